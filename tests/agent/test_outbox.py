"""Outbox: durable before send, leaves only on resolve, survives a killed process, and
holds no document number (only keys sealed to the regional), pending or resolved."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from firmware.agent.outbox import Outbox
from firmware.errors import SetupError
from firmware.protocol.dockey import DocumentKey
from tests.agent.sealing import SEALER, opened

DK1 = DocumentKey("UTO", "P", "L898902C3")
DK2 = DocumentKey("D", "I", "T22000129")


def box(qid: bytes, dk: DocumentKey = DK1) -> bytes:
    return SEALER.seal(qid, dk)


def all_bytes(d) -> bytes:
    return b"".join(f.read_bytes() for f in d.iterdir() if f.is_file())


def test_wal_and_full_sync(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob:
        assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (os.stat(tmp_path / "o.sqlite").st_mode & 0o777) == 0o600


def test_add_resolve_and_duplicate(tmp_path):
    q1, q2 = b"\x01" * 16, b"\x02" * 16
    with Outbox(tmp_path / "o.sqlite") as ob:
        a = ob.add(q1, box(q1), 1.0, audit_seq=4)
        b = ob.add(q2, box(q2, DK2), 2.0)
        assert (a.seq, b.seq, a.audit_seq, b.audit_seq) == (1, 2, 4, None)
        assert [e.seq for e in ob.pending()] == [1, 2]
        ob.attempted(a.query_id)
        assert ob.get(a.query_id).attempts == 1
        assert opened(SEALER.ref(ob.resolve(q1).sealed), q1) == DK1  # only the regional
        assert ob.resolve(q1) is None  # a second verdict finds nothing
        assert len(ob) == 1


def test_only_sealed_keys_are_stored(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob, pytest.raises(TypeError):
        ob.add(b"\x01" * 16, ("UTO", "P", "L898902C3"), 1.0)  # type: ignore[arg-type]


def test_seq_survives_restart_and_rescans(tmp_path):
    p = tmp_path / "o.sqlite"
    with Outbox(p) as ob:
        ob.add(b"a" * 16, box(b"a" * 16), 1.0)
        assert ob.bump_seq() == 2
    with Outbox(p) as ob:
        assert ob.next_seq() == 3
        assert ob.add(b"b" * 16, box(b"b" * 16), 1.0).seq == 3


def test_no_document_number_in_any_file_pending_or_resolved(tmp_path):
    """Neither the database, its WAL nor its -shm ever holds the number, before or after
    resolve, closed cleanly or not."""
    p = tmp_path / "o.sqlite"
    ob = Outbox(p)
    ob.add(b"a" * 16, box(b"a" * 16, DocumentKey("UTO", "P", "ZZ9876543")), 1.0)
    ob.add(b"b" * 16, box(b"b" * 16, DocumentKey("UTO", "P", "YY1234567")), 1.0)
    assert os.path.getsize(str(p) + "-wal") > 0  # the rows are in the WAL now
    data = all_bytes(tmp_path)
    assert b"ZZ9876543" not in data and b"YY1234567" not in data
    ob.resolve(b"a" * 16)
    data = all_bytes(tmp_path)
    assert b"ZZ9876543" not in data and b"YY1234567" not in data
    ob.close()
    assert b"YY1234567" not in all_bytes(tmp_path)


def test_row_survives_sigkill_right_after_add(tmp_path):
    """A process killed right after add() returned: the row is there after restart."""
    p = tmp_path / "o.sqlite"
    sealed = box(b"k" * 16)
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from firmware.agent.outbox import Outbox
        ob = Outbox({str(p)!r})
        ob.add(b"k" * 16, {sealed!r}, 5.0)
        sys.stdout.write("added\\n"); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == -signal.SIGKILL and r.stdout == "added\n"
    assert os.path.exists(str(p) + "-wal")  # never checkpointed: only the WAL has it
    with Outbox(p) as ob:
        [e] = ob.pending()
        assert (e.query_id, e.seq, e.sealed) == (b"k" * 16, 1, sealed)


def test_uncommitted_transaction_is_not_pending(tmp_path):
    """Only committed rows count: a half-done insert is rolled back by SQLite on open."""
    p = tmp_path / "o.sqlite"
    Outbox(p).close()
    db = sqlite3.connect(p, isolation_level=None)
    db.execute("BEGIN")
    db.execute(
        "INSERT INTO pending(query_id, seq, scanned_at, sealed, audit_seq, attempts) "
        "VALUES(?, 1, 1.0, x'00', NULL, 0)",
        (b"x",),
    )
    # connection dropped without COMMIT
    del db
    with Outbox(p) as ob:
        assert ob.pending() == []


def _old_outbox(p) -> None:
    """An outbox as versions before issue 13 wrote it: plain keys, in the WAL."""
    db = sqlite3.connect(p, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(
        """
        CREATE TABLE pending (query_id BLOB PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,
            scanned_at REAL NOT NULL, state TEXT NOT NULL, category TEXT NOT NULL,
            number TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta VALUES('seq', 2);
        """
    )
    db.execute("INSERT INTO pending VALUES(?, 2, 9.0, 'UTO', 'P', 'QQ7654321', 3)", (b"o" * 16,))
    db.close()


def test_an_old_outbox_is_sealed_and_purged_at_open(tmp_path):
    p = tmp_path / "o.sqlite"
    _old_outbox(p)
    assert b"QQ7654321" in all_bytes(tmp_path)
    with Outbox(p, migrate=lambda qid, key: SEALER.seal(qid, DocumentKey(*key))) as ob:
        [e] = ob.pending()
        assert (e.query_id, e.seq, e.attempts, e.audit_seq) == (b"o" * 16, 2, 3, None)
        assert opened(SEALER.ref(e.sealed), e.query_id) == DocumentKey("UTO", "P", "QQ7654321")
        assert ob.next_seq() == 3
        assert b"QQ7654321" not in all_bytes(tmp_path)


def test_an_old_outbox_without_a_sealer_is_refused(tmp_path):
    p = tmp_path / "o.sqlite"
    _old_outbox(p)
    with pytest.raises(SetupError, match="plain document keys"):
        Outbox(p)
