"""The index benchmark at a tiny size: output shape, its headline's order, and failure."""

import argparse

import pytest

from firmware.errors import SetupError
from host_tools.bench import index as bench
from host_tools.sltd import index as ix
from host_tools.sltd.pgcluster import pg_bindir
from tests.support.require import need


def args(*extra, **kw):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    a = p.parse_args(["--records", "20000", "--probes", "400", "--rounds", "1", *extra])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_index_vs_sqlite_in_process_then_postgres_over_tcp(tmp_path):
    try:
        pg_bindir()
    except SetupError as exc:
        need("pg", str(exc))
    res = bench.run(args(workdir=tmp_path))
    for key in (
        "index_bytes_per_record",
        "index_lookup_us",
        "hash_us",
        "sqlite_lookup_us",
        "sqlite_load_s",
        "pg_tcp_lookup_us",
        "pg_load_s",
        "pg_tcp_over_index",
        "sqlite_over_index",
        "target_bytes_per_record_ok",
        "target_20x_pg_ok",
        "peak_rss_mb",
    ):
        assert key in res, key
    assert res["failures"] == []
    assert res["records"] == 20000 and res["pg_records"] == 20000
    assert 8.0 < res["index_bytes_per_record"] <= 9.0
    assert res["index_lookup_us"] > 0 and res["pg_tcp_lookup_us"] > 0
    assert res["pg_tcp_over_index"] == pytest.approx(
        res["pg_tcp_lookup_us"] / res["index_lookup_us"]
    )
    # the like-for-like comparison comes first; PostgreSQL is named with its transport
    head = res["headline"]
    assert head[1].startswith("vs SQLite, both in process")
    assert "PostgreSQL over TCP on 127.0.0.1" in head[2]
    text = bench.format_text(res)
    assert text.index("SQLite, both in process") < text.index("over TCP on 127.0.0.1")


def test_wrong_answers_withhold_the_ratios(tmp_path, monkeypatch):
    """An index that answers every probe 'absent' is wrong for every hit."""
    monkeypatch.setattr(ix.HashIndex, "contains", lambda self, h: False)
    res = bench.run(args("--no-postgres", workdir=tmp_path))
    (why,) = res["failures"]
    assert why.startswith("index: 200 of ") and why.endswith(" lookups answered wrongly")
    assert "sqlite_over_index" not in res and "target_bytes_per_record_ok" not in res
    assert res["headline"][0].startswith("INVALID")


def test_default_size_fits_this_machine_and_full_is_100m():
    def records(*flags):
        p = argparse.ArgumentParser()
        bench.add_arguments(p)
        return bench.records_for(p.parse_args(list(flags)))

    assert records() == 10_000_000
    assert records("--quick") == 1_000_000
    assert records("--full") == 100_000_000
    assert records("--full", "--records", "5000") == 5000
    with pytest.raises(SystemExit):
        records("--quick", "--full")


def test_probes_mix_hits_and_misses():
    keys = bench.make_keys(1000, 3)
    assert keys.size == 1000 and (keys[1:] > keys[:-1]).all()
    probes, expect = bench.make_probes(keys, 200, 0.5, 3)
    members = set(keys.tolist())
    assert [p in members for p in probes] == expect
    assert 80 <= sum(expect) <= 120
