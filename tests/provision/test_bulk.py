"""``add-terminals``: the same bundles as add-terminal, in batches that are all or nothing,
and a regional broker that admits every terminal made."""

from __future__ import annotations

import json
import os
import sqlite3
import tomllib

import pytest

from host_tools.provision import authority, bulk

from .helpers import Peer

N = 50


def _registry_ids(region) -> set[str]:
    with sqlite3.connect(region.registry / "registry.sqlite") as db:
        return {r[0] for r in db.execute("SELECT id FROM terminals")}


def _cert_subjects(region) -> set[str]:
    with sqlite3.connect(region.registry / "registry.sqlite") as db:
        return {r[0] for r in db.execute("SELECT subject FROM certs")}


def test_bulk_bundles_match_add_terminal_and_the_broker_admits_them(region, broker, capsys):
    out = region.root / "fleet"
    rc = region.cli(
        "add-terminals", "--count", str(N), "--prefix", "lane-", "--site", "post-9",
        "--out", str(out), "--batch-size", "20", "--no-progress",
    )  # fmt: skip
    assert rc == 0
    said = capsys.readouterr().out
    assert f"{N} terminals at site post-9" in said and "(3 batch(es))" in said
    ids = [f"lane-{n:05d}" for n in range(1, N + 1)]
    assert sorted(p.name for p in out.iterdir()) == ids  # no staging directory left
    single = {p.name for p in region.bundle("kiosk-001").iterdir()}
    for tid in (ids[0], ids[-1]):
        b = out / tid
        assert {p.name for p in b.iterdir()} == single | {"lane.key"}  # a site's lane key
        doc = tomllib.loads((b / "terminal.toml").read_text())
        assert doc["terminal"] == {"id": tid, "region": "central", "site": "post-9",
                                   "language": "en"}  # fmt: skip
        assert oct((b / "client.key").stat().st_mode & 0o777) == "0o600"
        lines = (b / "MANIFEST.sha256").read_text().splitlines()
        assert len(lines) == len(single)  # every file but the manifest itself
    assert set(ids) <= _registry_ids(region) and set(ids) <= _cert_subjects(region)
    dyn = json.loads((region.broker_dir / "dynamic-security.json").read_text())
    assert set(ids) <= {c["username"] for c in dyn["clients"]}
    terms = json.loads((region.broker_dir / "terminals.json").read_text())["terminals"]
    assert len(terms[ids[-1]]["keys"]) == 1
    # the running broker was told (dynamic security's control topic): a bulk kiosk may
    # publish its query now, and only its own
    k = Peer.from_bundle(region.port, out / ids[-1], ids[-1]).connect()
    try:
        assert not k.publish(f"ft/v1/central/q/{ids[-1]}").is_failure
        assert k.publish(f"ft/v1/central/q/{ids[0]}").is_failure
    finally:
        k.close()


@pytest.mark.parametrize("where", ["enrol", "rename"])
def test_a_failure_mid_batch_leaves_nothing_of_that_batch(region, monkeypatch, capsys, where):
    """Batch 1 (10 terminals) commits; the failure in batch 2 rolls it back whole: no row,
    certificate or bundle of it, nor a staging directory, and the error says so."""
    out = region.root / "fleet"
    before_ids, before_certs = _registry_ids(region), _cert_subjects(region)
    calls = {"n": 0}
    if where == "enrol":
        real = authority.RegionAuthority.enrol

        def enrol(self, tid, opts):
            calls["n"] += 1
            if calls["n"] == 15:  # the 5th terminal of the second batch
                raise OSError(28, "No space left on device (injected)")
            return real(self, tid, opts)

        monkeypatch.setattr(authority.RegionAuthority, "enrol", enrol)
    else:
        real_rename = os.rename

        def rename(src, dst):
            calls["n"] += 1
            if calls["n"] == 15:  # after 4 bundles of batch 2 are in place
                raise OSError(5, "Input/output error (injected)")
            return real_rename(src, dst)

        monkeypatch.setattr(bulk.os, "rename", rename)
    rc = region.cli(
        "add-terminals", "--count", "25", "--prefix", "k-", "--out", str(out),
        "--batch-size", "10", "--no-progress",
    )  # fmt: skip
    assert rc != 0
    err = capsys.readouterr().err
    assert "(injected): the 10 terminal(s) of the 1 batch(es) before it are in" in err
    assert "nothing of the batch from k-00011 was kept" in err
    first = {f"k-{n:05d}" for n in range(1, 11)}
    assert {p.name for p in out.iterdir()} == first  # batch 1 only, no staging left
    assert _registry_ids(region) == before_ids | first
    assert _cert_subjects(region) == before_certs | first
    monkeypatch.undo()
    # the same command, the rest of the numbers: nothing in the way
    rc = region.cli(
        "add-terminals", "--count", "15", "--start", "11", "--prefix", "k-",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert rc == 0
    assert len(list(out.iterdir())) == 25


def test_refusals_name_the_terminal_and_make_nothing(region, capsys):
    out = region.root / "fleet"
    rc = region.cli(
        "add-terminals", "--count", "3", "--prefix", "kiosk-00", "--digits", "1",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert rc != 0
    err = capsys.readouterr().err
    assert "terminal 'kiosk-001' already exists" in err
    assert not out.exists() and "kiosk-003" not in _registry_ids(region)
    assert region.cli("add-terminals", "--count", "2", "--prefix", "Bad_", "--out", str(out)) != 0
    assert "'Bad_00001' is not a valid terminal id (character 1, 'B')" in capsys.readouterr().err
    assert region.cli("add-terminals", "--count", "0", "--prefix", "k-", "--out", str(out)) != 0
    assert "--count 0: give 1 or more terminals" in capsys.readouterr().err
