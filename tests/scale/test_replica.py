"""Lookups on a streaming replica see what is written on the primary (issue 15, item 3).

A real PostgreSQL primary and a ``pg_basebackup -R`` hot standby; the regional's
:class:`SltdLookup` opens the replica (read-only: no schema writes) and its change-log
poll (``refresh``) brings a record added, then removed, on the primary into its index."""

import datetime as dt
import time

import pytest

from firmware.errors import SetupError
from firmware.protocol.dockey import DocumentKey
from host_tools.sltd import pgcluster
from host_tools.sltd.lookup import SltdLookup
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import open_store
from tests.support.require import need

KEY = ("TJK", "P", "RP0000001")
DK = DocumentKey(*KEY)


def _until_refreshed(lk: SltdLookup, within: float = 10.0) -> float:
    """Poll the replica's change log (as the regional's timer does) until a change lands;
    seconds it took. Bounded: the primary-to-replica lag measured here is ~0.1 s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if lk.refresh():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"no change reached the replica's index within {within} s")


def test_replica_lookup_follows_the_primary(tmp_path):
    try:
        pgcluster.pg_bindir()
        import psycopg  # noqa: F401, PLC0415
    except (SetupError, ImportError) as exc:
        need("pg", str(exc))
    with (
        pgcluster.PgCluster(tmp_path / "primary") as primary,
        pgcluster.PgReplica(primary, tmp_path / "replica") as replica,
    ):
        with open_store(primary.url, create=True) as st:
            st.upsert([SltdRecord("UTO", "P", "X1", Status.LOST, "UTO", dt.date(2026, 1, 2), "R")])
        deadline = time.monotonic() + 10  # the schema itself must first reach the replica
        while True:
            try:
                lk = SltdLookup.open(replica.url, bytes(32), index_dir=tmp_path)
                break
            except SetupError:  # "relation sltd_meta does not exist" until replayed
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with lk:
            assert lk.store.replica  # type: ignore[attr-defined]
            assert lk.lookup(DK) is None
            rec = SltdRecord(*KEY, Status.STOLEN, "TJK", dt.date(2026, 3, 3), "TJ-1")
            with open_store(primary.url) as st:
                st.upsert([rec])
            _until_refreshed(lk)
            hit = lk.lookup(DK)
            assert hit is not None and hit.reference == "TJ-1"
            with open_store(primary.url) as st:
                st.remove([KEY])
            _until_refreshed(lk)
            assert lk.lookup(DK) is None
            with pytest.raises(Exception, match="read-only"):
                lk.store.upsert([rec])
