"""The SLTD store contract: every backend in ``STORES`` passes these same tests.

The ``store_url`` fixture runs each test once on a fresh SQLite file and once on a fresh
database of a real throwaway PostgreSQL cluster (``pg_url`` in conftest.py; a missing
PostgreSQL is ``need("pg", ...)``: a skip here, a failure in CI). Expected values come
from the records and rows each test writes itself, never from the store.

Backend-specific behaviour (SQLite files, PostgreSQL connections, the lookup over
PostgreSQL) is in test_store.py and test_pgstore.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest

from firmware.errors import OperationError
from host_tools.sltd.pgstore import PgStore
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import SltdStore, SqliteStore, StaleChangeLog, open_store

BACKENDS = {"sqlite": SqliteStore, "postgresql": PgStore}


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request, tmp_path) -> str:
    """The URL of a new, empty store of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "contract.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url):
    with open_store(store_url, create=True) as st:
        yield st


def rec(number="12AB34567", status=Status.STOLEN, state="FRA", event=dt.date(2025, 2, 20)):
    return SltdRecord(state, "P", number, status, state, dt.date(2025, 3, 1), "FRA/1", event)


def rows(n: int, start: int = 0):
    """``n`` stored rows spread over states, types and statuses, written out by hand."""
    states = ("USA", "USA", "USA", "DEU", "DEU", "KAZ", "UZB")
    types = ("P", "I", "P", "A", "C", "V")
    statuses = ("LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALIDATED", "LOST")
    return [
        (
            states[i % len(states)],
            types[i % len(types)],
            f"N{i:08d}",
            statuses[i % len(statuses)],
            states[(i + 1) % len(states)],
            "2024-01-01",
            None if i % 3 else "2023-12-24",
            f"ref-{i}",
        )
        for i in range(start, start + n)
    ]


def test_open_store_picks_the_backend_from_the_url(store_url, store):
    scheme = "postgresql" if "://" in store_url else "sqlite"
    assert type(store) is BACKENDS[scheme]
    assert isinstance(store, SltdStore)


def test_round_trip_versions_and_change_log(store_url, store):
    assert store.version() == 0 and store.count() == 0
    assert store.upsert([rec(), rec("X1", event=None)]) == 2
    assert store.version() == 1
    assert store.get("FRA", "P", "12AB34567") == rec()
    assert store.get("FRA", "P", "X1") == rec("X1", event=None)  # no event date survives
    # one part of the key differs: not listed
    assert store.get("FRA", "I", "12AB34567") is None
    assert store.get("DEU", "P", "12AB34567") is None
    assert store.get("FRA", "P", "12AB34568") is None
    # replace: same key, new status, one more version, still one record under the key
    assert store.upsert([rec(status=Status.REVOKED)]) == 1
    got = store.get("FRA", "P", "12AB34567")
    assert got is not None and got.status is Status.REVOKED
    assert store.count() == 2
    assert store.remove([("FRA", "P", "X1"), ("FRA", "P", "NOPE")]) == 1
    version, changes = store.changes_since(0)
    assert version == 3
    assert changes == [
        ("A", "FRA", "P", "12AB34567"),
        ("A", "FRA", "P", "X1"),
        ("A", "FRA", "P", "12AB34567"),
        ("R", "FRA", "P", "X1"),  # the key that was not listed is not logged
    ]
    assert store.changes_since(2) == (3, [("R", "FRA", "P", "X1")])
    assert store.changes_since(3) == (3, [])


def test_empty_writes_change_nothing(store):
    assert store.upsert([]) == 0
    assert store.remove([]) == 0
    assert store.version() == 0 and store.changes_since(0) == (0, [])


def test_reopened_store_keeps_its_id_and_content(store_url, store):
    store.upsert([rec()])
    store_id = store.store_id
    assert len(store_id) >= 16
    store.close()
    store.close()  # idempotent
    with open_store(store_url) as again:
        assert again.store_id == store_id
        assert again.count() == 1 and again.version() == 1
        assert again.get("FRA", "P", "12AB34567") == rec()


def test_two_stores_have_different_ids(store_url, store, tmp_path, request):
    if "://" in store_url:
        other_url = request.getfixturevalue("new_pg_database")()
    else:
        other_url = str(tmp_path / "other.sqlite")
    with open_store(other_url, create=True) as other:
        assert other.store_id != store.store_id


def test_failed_write_changes_nothing(store):
    store.upsert([rec()])

    def bad():
        yield rec("OK1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.upsert(bad())
    assert store.count() == 1 and store.version() == 1
    assert store.get("FRA", "P", "OK1") is None
    assert store.changes_since(0) == (1, [("A", "FRA", "P", "12AB34567")])


def test_bulk_load_is_unlogged_and_marks_rebuild(store):
    loaded = rows(50)
    assert store.bulk_load([loaded[:20], loaded[20:]]) == 50
    assert store.version() == 1 and store.rebuild_version() == 1
    assert store.count() == 50
    with pytest.raises(StaleChangeLog, match="bulk"):
        store.changes_since(0)
    assert store.changes_since(1) == (1, [])
    first = store.get(*loaded[7][:3])
    assert first is not None and first.reference == "ref-7"
    with pytest.raises(OperationError, match="empty"):
        store.bulk_load([rows(1, start=100)])
    assert store.count() == 50 and store.version() == 1
    # logged changes after the bulk load are a delta from its version
    store.upsert([rec()])
    assert store.changes_since(1) == (2, [("A", "FRA", "P", "12AB34567")])


def test_failed_bulk_load_leaves_the_store_empty(store):
    def batches():
        yield rows(10)
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        store.bulk_load(batches())
    assert store.count() == 0 and store.version() == 0 and store.rebuild_version() == 0
    # and it still takes a bulk load, and its key still refuses duplicates (upsert replaces)
    assert store.bulk_load([rows(10)]) == 10
    store.upsert(
        [SltdRecord("USA", "P", "N00000000", Status.LOST, "DEU", dt.date(2024, 1, 1), "x")]
    )
    assert store.count() == 10


def test_key_snapshot_is_consistent_while_writes_go_on(store):
    store.bulk_load([rows(30)])
    with store.key_snapshot() as (version, batches):
        store.upsert([rec()])  # after the snapshot began: not in it
        keys = [k for b in batches for k in b]
    assert version == 1
    assert sorted(map(tuple, keys)) == sorted(r[:3] for r in rows(30))
    with store.key_snapshot() as (version, batches):
        keys = [tuple(k) for b in batches for k in b]
    assert version == 2 and ("FRA", "P", "12AB34567") in keys and len(keys) == 31


def test_get_from_many_threads(store):
    loaded = rows(40)
    store.bulk_load([loaded])
    found: list[str | None] = []
    errors: list[BaseException] = []

    def reader(part):
        try:
            for r in part:
                got = store.get(*r[:3])
                found.append(got.reference if got else None)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(loaded[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(found) == sorted(r[7] for r in loaded)


def test_stats_count_what_was_loaded(store):
    loaded = rows(70)
    store.bulk_load([loaded])
    s = store.stats(top=2)
    by_state = Counter(r[0] for r in loaded)
    assert s["records"] == 70 and s["list_version"] == 1
    assert s["by_status"] == dict(Counter(r[3] for r in loaded))
    assert s["by_document_type"] == dict(Counter(r[1] for r in loaded))
    assert s["issuing_states"] == len(by_state)
    assert s["top_issuing_states"] == dict(by_state.most_common(2))
    assert list(s["top_issuing_states"]) == ["USA", "DEU"]  # 30 and 20 of the 70 rows
    assert s["size_bytes"] > 0
    assert "@" not in s["store"]  # a URL's credentials never reach the stats
