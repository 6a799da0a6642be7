"""PostgreSQL-specific behaviour of the SLTD store, on a real throwaway cluster
(conftest.py's ``pg_url``). What every backend must do is in test_store_contract.py."""

import datetime as dt

import pytest

from firmware.errors import OperationError
from firmware.protocol.dockey import DocumentKey
from host_tools.sltd.generate import GeneratorSpec, ListGenerator
from host_tools.sltd.lookup import SltdLookup
from host_tools.sltd.pgstore import PgStore
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import open_store


def test_both_scheme_spellings_open_the_pg_backend(pg_url):
    with open_store(pg_url) as a, open_store(pg_url.replace("postgresql://", "postgres://")) as b:
        assert type(a) is PgStore and type(b) is PgStore
        assert a.store_id == b.store_id
        assert a.local_path is None  # a server store: an index goes to index_dir


def test_unreachable_server_is_an_operation_error(pg_cluster):
    gone = pg_cluster.url.replace(f":{pg_cluster.port}/", f":{pg_cluster.port}/no_such_db_")
    with pytest.raises(OperationError, match="cannot connect"):
        open_store(gone)


def test_bulk_load_of_a_generated_list(pg_url):
    gen = ListGenerator(GeneratorSpec(3000, 9))
    with open_store(pg_url) as st:
        assert st.bulk_load(gen.rows()) == 3000
        sample = gen.sample_records(3)
        assert st.get(*sample[0].key_tuple) == sample[0]
        with st.key_snapshot() as (version, batches):
            keys = {k for b in batches for k in b}
        assert version == 1 and len(keys) == 3000 and sample[2].key_tuple in keys


def test_lookup_over_pg_store(pg_url, tmp_path):
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


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restarted_server_is_reconnected_on_the_next_read(pg_cluster, pg_url, mode):
    rec = SltdRecord("UTO", "P", "R0000001", Status.STOLEN, "UTO", dt.date(2025, 3, 1), "REF/1")
    with open_store(pg_url, create=True) as store:
        store.upsert([rec])
        v = store.version()
        import psycopg  # noqa: PLC0415

        with psycopg.connect(pg_cluster.url, autocommit=True) as db:
            db.execute("CHECKPOINT")  # the test cluster runs synchronous_commit=off
        pg_cluster.stop(mode)  # the regional's PostgreSQL goes away under it ...
        pg_cluster.resume()  # ... and comes back: the store's connection is dead
        assert store.get("UTO", "P", "R0000001") == rec  # retried on a new connection
        assert store.version() == v
        assert store.changes_since(v) == (v, [])
        store.upsert(
            [SltdRecord("UTO", "P", "R0000002", Status.LOST, "UTO", dt.date(2025, 3, 2), "REF/2")]
        )
        assert store.count() == 2
