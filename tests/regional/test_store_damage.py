"""The regional's replay and audit stores (issue 14): a damaged file is put aside with an
alarm and a new one started; an answer is published only after its audit row is
durable, and not at all when the row cannot be written."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from host_tools.regional.audit import AuditTrail
from host_tools.regional.replay import ReplayStore


def aside(d, name):
    return [p for p in d.iterdir() if p.name.startswith(f"{name}.bad-")]


def corrupt(path):
    """A real store, then its second page overwritten (as a torn or bad sector would)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x BLOB)")
    db.executemany("INSERT INTO t VALUES (?)", [(bytes(500),)] * 50)
    db.commit()
    db.close()
    raw = bytearray(path.read_bytes())
    raw[4096:8192] = b"\x5a" * 4096
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["garbage", "page"])
def test_replay_store_damaged_is_put_aside_and_works(tmp_path, damage):
    path = tmp_path / "replay.sqlite"
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:
        corrupt(path)
    store = ReplayStore(path, 120.0)
    assert len(store.alarms) == 1 and "put aside as replay.sqlite.bad-" in store.alarms[0]
    assert aside(tmp_path, "replay.sqlite")
    assert store.first_use(b"n" * 16, 1.0) and not store.first_use(b"n" * 16, 2.0)
    store.close()


def test_replay_store_sound_raises_no_alarm(tmp_path):
    ReplayStore(tmp_path / "r.sqlite", 120.0).close()
    assert ReplayStore(tmp_path / "r.sqlite", 120.0).alarms == []


def test_audit_trail_damaged_is_put_aside(tmp_path):
    path = tmp_path / "audit.sqlite"
    path.write_bytes(b"\x00garbage" * 1000)
    trail = AuditTrail(path)
    try:
        assert "regional audit trail audit.sqlite is damaged" in trail.alarms[0]
        assert aside(tmp_path, "audit.sqlite")
    finally:
        trail.close()


def test_answer_goes_out_only_after_its_row_is_committed(tmp_path):
    path = tmp_path / "audit.sqlite"
    trail = AuditTrail(path, linger=0.01)
    seen: list[int] = []
    done = threading.Event()

    def publish():
        other = sqlite3.connect(path)  # another connection: sees committed rows only
        seen.append(other.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
        other.close()
        done.set()

    trail.record(1.0, "T1", b"q" * 16, "00" * 8, "NO_MATCH", 7, then=publish)
    assert done.wait(5.0)
    trail.close()
    assert seen == [1]


def test_no_answer_when_the_row_cannot_be_written(tmp_path):
    path = tmp_path / "audit.sqlite"
    AuditTrail(path).close()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk'); END"
    )
    db.commit()
    db.close()
    trail = AuditTrail(path, linger=0.01)
    published = []
    trail.record(1.0, "T1", b"q" * 16, "00" * 8, "NO_MATCH", 7, then=lambda: published.append(1))
    trail.close()  # flushes: the batch was tried and refused
    assert published == [] and trail.written == 0
