"""Smoke run of the index benchmark at a tiny size: output shape and sane figures."""

import argparse

import pytest

from host_tools.bench import index as bench


def args(**kw):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    a = p.parse_args(["--records", "20000", "--probes", "400", "--rounds", "1"])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_index_vs_sqlite_and_postgres(tmp_path):
    res = bench.run(args(workdir=tmp_path))
    for key in (
        "index_bytes_per_record",
        "index_lookup_us",
        "hash_us",
        "sqlite_lookup_us",
        "sqlite_load_s",
        "pg_lookup_us",
        "pg_load_s",
        "pg_over_index",
        "sqlite_over_index",
        "target_bytes_per_record_ok",
        "target_20x_pg_ok",
    ):
        assert key in res, key
    assert res["records"] == 20000 and res["pg_records"] == 20000
    assert 8.0 < res["index_bytes_per_record"] <= 9.0
    assert res["index_lookup_us"] > 0 and res["pg_lookup_us"] > 0
    assert res["pg_over_index"] == pytest.approx(res["pg_lookup_us"] / res["index_lookup_us"])


def test_probes_mix_hits_and_misses():
    keys = bench.make_keys(1000, 3)
    assert keys.size == 1000 and (keys[1:] > keys[:-1]).all()
    probes, expect = bench.make_probes(keys, 200, 0.5, 3)
    members = set(keys.tolist())
    assert [p in members for p in probes] == expect
    assert 80 <= sum(expect) <= 120
