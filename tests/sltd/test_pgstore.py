"""The PostgreSQL store against a real throwaway cluster: same contract as SQLite."""

import datetime as dt

import pytest

from host_tools.sltd import pgcluster
from host_tools.sltd.generate import GeneratorSpec, ListGenerator
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import StaleChangeLog, open_store


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    try:
        pgcluster.pg_bindir()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not installed: {exc}")
    with pgcluster.PgCluster(tmp_path_factory.mktemp("pg")) as pg:
        yield pg.url


def test_pg_store_round_trip_changes_and_bulk(pg_url, tmp_path):
    gen = ListGenerator(GeneratorSpec(3000, 9))
    with open_store(pg_url) as st:
        assert st.bulk_load(gen.rows()) == 3000
        assert st.version() == st.rebuild_version() == 1
        sample = gen.sample_records(3)
        assert st.get(*sample[0].key_tuple) == sample[0]
        extra = SltdRecord("UZB", "I", "AA0000001", Status.LOST, "UZB", dt.date(2026, 2, 1), "UZ-1")
        st.upsert([extra])
        assert st.remove([sample[1].key_tuple]) == 1
        assert st.changes_since(1) == (
            3,
            [("A", "UZB", "I", "AA0000001"), ("R", *sample[1].key_tuple)],
        )
        with pytest.raises(StaleChangeLog):
            st.changes_since(0)
        with st.key_snapshot() as (version, batches):
            keys = {k for b in batches for k in b}
        assert version == 3 and len(keys) == 3000 and extra.key_tuple in keys
        s = st.stats(top=3)
        assert s["records"] == 3000 and len(s["top_issuing_states"]) == 3


def test_lookup_over_pg_store(pg_url, tmp_path):
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415 (lands in parallel)
    from host_tools.sltd.lookup import SltdLookup  # noqa: PLC0415

    with open_store(pg_url) as st:
        st.upsert(
            [SltdRecord("TJK", "P", "PG0000001", Status.STOLEN, "TJK", dt.date(2026, 3, 3), "TJ-9")]
        )
    with SltdLookup.open(pg_url, bytes(32), index_dir=tmp_path) as lk:
        assert lk.path.parent == tmp_path
        hit = lk.lookup(DocumentKey("TJK", "P", "PG0000001"))
        assert hit is not None and hit.reference == "TJ-9"
        assert lk.lookup(DocumentKey("TJK", "P", "PG0000002")) is None
        with open_store(pg_url) as st:
            st.remove([("TJK", "P", "PG0000001")])
        assert lk.refresh() == 1
        assert lk.lookup(DocumentKey("TJK", "P", "PG0000001")) is None
