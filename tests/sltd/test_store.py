import datetime as dt

import pytest

from firmware.errors import OperationError, SetupError
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import SqliteStore, StaleChangeLog, open_store


def rec(number="12AB34567", status=Status.STOLEN, state="FRA"):
    return SltdRecord(
        state, "P", number, status, state, dt.date(2025, 3, 1), "FRA/1", dt.date(2025, 2, 20)
    )


def test_round_trip_and_versions(tmp_path):
    with open_store(tmp_path / "s.sqlite", create=True) as st:
        assert st.version() == 0
        assert st.upsert([rec(), rec("X1")]) == 2
        assert st.version() == 1
        assert st.get("FRA", "P", "12AB34567") == rec()
        assert st.get("FRA", "I", "12AB34567") is None
        # replace: same key, new status, one more version
        st.upsert([rec(status=Status.REVOKED)])
        assert st.get("FRA", "P", "12AB34567").status is Status.REVOKED
        assert st.count() == 2
        assert st.remove([("FRA", "P", "X1"), ("FRA", "P", "NOPE")]) == 1
        version, changes = st.changes_since(0)
        assert version == 3
        assert changes == [
            ("A", "FRA", "P", "12AB34567"),
            ("A", "FRA", "P", "X1"),
            ("A", "FRA", "P", "12AB34567"),
            ("R", "FRA", "P", "X1"),
        ]
        assert st.changes_since(2) == (3, [("R", "FRA", "P", "X1")])
    # reopened: same id and content
    with open_store(tmp_path / "s.sqlite") as st2:
        assert st2.count() == 1 and st2.version() == 3


def test_failed_write_changes_nothing(tmp_path):
    st = SqliteStore(tmp_path / "s.sqlite", create=True)
    st.upsert([rec()])

    def bad():
        yield rec("OK1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        st.upsert(bad())
    assert st.count() == 1 and st.version() == 1
    st.close()


def test_bulk_load_is_unlogged_and_marks_rebuild(tmp_path):
    st = SqliteStore(tmp_path / "s.sqlite", create=True)
    rows = [("D", "I", f"{i:09d}", "LOST", "D", "2024-01-01", None, f"r{i}") for i in range(50)]
    assert st.bulk_load([rows[:20], rows[20:]]) == 50
    assert st.version() == 1 and st.rebuild_version() == 1
    with pytest.raises(StaleChangeLog):
        st.changes_since(0)
    assert st.changes_since(1) == (1, [])
    with pytest.raises(OperationError, match="empty"):
        st.bulk_load([rows])
    with st.key_snapshot() as (version, batches):
        keys = [k for b in batches for k in b]
    assert version == 1 and len(keys) == 50 and ("D", "I", "000000007") in keys
    st.close()


def test_missing_store_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match="not found"):
        open_store(tmp_path / "nope.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SetupError, match="not a usable"):
        open_store(tmp_path / "junk.sqlite")


def test_stats(small_db):
    with open_store(small_db) as st:
        s = st.stats(top=5)
    assert s["records"] == 5000
    assert sum(s["by_status"].values()) == 5000
    assert set(s["by_status"]) == {x.value for x in Status}
    assert set(s["by_document_type"]) <= {"P", "I", "A", "C", "V"}
    assert len(s["top_issuing_states"]) == 5
    assert next(iter(s["top_issuing_states"])) == "USA"
    assert s["list_version"] == 1 and s["size_bytes"] > 0
