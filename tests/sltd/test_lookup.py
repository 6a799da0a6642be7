"""SltdLookup: hits, misses, live updates without blocking, compaction, collisions, reopen."""

import datetime as dt
import threading

import pytest

from firmware.errors import SetupError
from firmware.protocol.dockey import DocumentKey, keyed_hash64
from host_tools.sltd.generate import GeneratorSpec, ListGenerator
from host_tools.sltd.lookup import SltdLookup, prekeyed_hasher
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.samples import generate_store
from host_tools.sltd.store import open_store


def rec(number, state="KAZ", status=Status.STOLEN):
    return SltdRecord(state, "P", number, status, state, dt.date(2026, 1, 5), "KZ-77")


def dk(r):
    return DocumentKey(r.issuing_state, r.document_type, r.document_number)


def test_hash_matches_the_protocol_definition(index_key):
    h = prekeyed_hasher(index_key)
    k = DocumentKey("D", "I", "T22000129")
    assert h(k.canonical()) == keyed_hash64(index_key, k)


def test_listed_hit_unlisted_miss(small_db, index_key):
    gen = ListGenerator(GeneratorSpec(5_000, 11))
    with SltdLookup.open(small_db, index_key) as lk:
        assert len(lk) == 5000 and lk.list_version == 1
        for r in gen.sample_records(50):
            assert lk.lookup(dk(r)) == r
        for key in gen.unlisted_keys(500):
            assert lk.lookup(DocumentKey(*key)) is None
        assert lk.path.exists() and lk.path.stat().st_size <= 9 * 5000 + 4096


def test_add_and_remove_apply_as_delta_without_rebuild(small_db, index_key):
    with SltdLookup.open(small_db, index_key) as lk, open_store(small_db) as st:
        built = lk.rebuilds
        mtime = lk.path.stat().st_mtime_ns
        victim = ListGenerator(GeneratorSpec(5_000, 11)).sample_records(1)[0]
        st.upsert([rec("N0000001")])
        st.remove([victim.key_tuple])
        assert lk.lookup(dk(rec("N0000001"))) is None  # not yet refreshed
        assert lk.refresh() == 2
        assert lk.lookup(dk(rec("N0000001"))) == rec("N0000001")
        assert lk.lookup(dk(victim)) is None
        assert lk.list_version == st.version() == 3
        # a status change is visible at once (records come from the store on a hit)
        st.upsert([rec("N0000001", status=Status.REVOKED)])
        lk.refresh()
        assert lk.lookup(dk(rec("N0000001"))).status is Status.REVOKED
        # re-adding a removed record brings it back
        st.upsert([victim])
        lk.refresh()
        assert lk.lookup(dk(victim)) == victim
        assert lk.rebuilds == built and lk.path.stat().st_mtime_ns == mtime
        assert lk.refresh() == 0


def test_lookups_keep_answering_during_compaction_and_rebuild(small_db, index_key):
    stable = ListGenerator(GeneratorSpec(5_000, 11)).sample_records(20)
    absent = [DocumentKey(*k) for k in ListGenerator(GeneratorSpec(5_000, 11)).unlisted_keys(20)]
    wrong: list[str] = []
    stop = threading.Event()
    counts = [0]

    with SltdLookup.open(small_db, index_key, compact_at=100) as lk, open_store(small_db) as st:

        def reader():
            while not stop.is_set():
                for r in stable:
                    if lk.lookup(dk(r)) != r:
                        wrong.append("stable record missed")
                for k in absent:
                    if lk.lookup(k) is not None:
                        wrong.append("absent key hit")
                counts[0] += 1

        t = threading.Thread(target=reader)
        t.start()
        try:
            for batch in range(5):  # 5 x 60 adds: crosses compact_at twice
                st.upsert([rec(f"B{batch}{i:05d}") for i in range(60)])
                lk.refresh()
            lk.wait_idle()
            lk.refresh()
            lk.compact(wait=True)
            lk.rebuild(wait=True)
        finally:
            stop.set()
            t.join(30)
        assert not wrong
        assert counts[0] > 0
        assert lk.compactions >= 1 and lk.rebuilds >= 2
        assert lk.overlay_size == 0
        assert len(lk) == 5300
        for b in range(5):
            assert lk.lookup(dk(rec(f"B{b}00059"))) is not None


def test_hash_collision_is_ruled_out_by_the_store(small_db, index_key):
    listed = ListGenerator(GeneratorSpec(5_000, 11)).sample_records(1)[0]
    with SltdLookup.open(
        small_db, index_key, index_dir=small_db.parent / "ix", hash_fn=lambda k: 42
    ) as lk:
        # every key hashes to 42, so every key "hits" the index ...
        assert lk.might_contain_hash(42)
        # ... but only the document that is really listed gets a record
        assert lk.lookup(dk(listed)) == listed
        assert lk.lookup(DocumentKey("KAZ", "P", "NOTLISTED1")) is None


def test_reopen_reuses_the_index_and_catches_up(small_db, index_key):
    with SltdLookup.open(small_db, index_key) as lk:
        assert lk.rebuilds == 1
    with open_store(small_db) as st:
        st.upsert([rec("LATE00001")])
    with SltdLookup.open(small_db, index_key) as lk:
        assert lk.rebuilds == 0
        assert lk.lookup(dk(rec("LATE00001"))) is not None
    # a regenerated store (new store id) never reuses the old index
    generate_store(small_db, records=100, seed=2, force=True, progress=False)
    with SltdLookup.open(small_db, index_key) as lk:
        assert lk.rebuilds == 1 and len(lk) == 100


def test_bulk_reload_rebuilds_in_background(tmp_path, index_key):
    db = tmp_path / "s.sqlite"
    with open_store(db, create=True) as st:
        st.upsert([rec("A0000001")])
    with SltdLookup.open(db, index_key) as lk, open_store(db) as st:
        st.remove([("KAZ", "P", "A0000001")])
        st.bulk_load([[("KAZ", "P", "BULK00001", "LOST", "KAZ", "2026-01-01", None, "r")]])
        lk.refresh()  # stale change log: starts a rebuild, answers meanwhile
        lk.wait_idle()
        assert lk.lookup(DocumentKey("KAZ", "P", "BULK00001")) is not None
        assert lk.lookup(DocumentKey("KAZ", "P", "A0000001")) is None
        assert lk.list_version == st.version()


def test_short_index_key_is_refused(small_db):
    with pytest.raises(SetupError, match="index_key"):
        SltdLookup.open(small_db, b"short")
