"""Outbox: durable before send, leaves only on resolve, survives a killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

from firmware.agent.outbox import Outbox


def test_wal_and_full_sync(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob:
        assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (os.stat(tmp_path / "o.sqlite").st_mode & 0o777) == 0o600


def test_add_resolve_and_duplicate(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob:
        a = ob.add(b"\x01" * 16, ("UTO", "P", "L898902C3"), 1.0)
        b = ob.add(b"\x02" * 16, ("D", "I", "T22000129"), 2.0)
        assert (a.seq, b.seq) == (1, 2)
        assert [e.seq for e in ob.pending()] == [1, 2]
        ob.attempted(a.query_id)
        assert ob.get(a.query_id).attempts == 1
        assert ob.resolve(a.query_id).key == ("UTO", "P", "L898902C3")
        assert ob.resolve(a.query_id) is None  # a second verdict finds nothing
        assert len(ob) == 1


def test_seq_survives_restart_and_rescans(tmp_path):
    p = tmp_path / "o.sqlite"
    with Outbox(p) as ob:
        ob.add(b"a" * 16, ("UTO", "P", "1"), 1.0)
        assert ob.bump_seq() == 2
    with Outbox(p) as ob:
        assert ob.next_seq() == 3
        assert ob.add(b"b" * 16, ("UTO", "P", "2"), 1.0).seq == 3


def test_resolved_rows_leave_no_document_number_in_the_file(tmp_path):
    p = tmp_path / "o.sqlite"
    with Outbox(p) as ob:
        ob.add(b"a" * 16, ("UTO", "P", "ZZ9876543"), 1.0)
        ob.resolve(b"a" * 16)
    data = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    assert b"ZZ9876543" not in data


def test_row_survives_sigkill_right_after_add(tmp_path):
    """A process killed right after add() returned: the row is there after restart."""
    p = tmp_path / "o.sqlite"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from firmware.agent.outbox import Outbox
        ob = Outbox({str(p)!r})
        ob.add(b"k" * 16, ("UTO", "P", "L898902C3"), 5.0)
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
        assert (e.query_id, e.seq, e.key) == (b"k" * 16, 1, ("UTO", "P", "L898902C3"))


def test_uncommitted_transaction_is_not_pending(tmp_path):
    """Only committed rows count: a half-done insert is rolled back by SQLite on open."""
    p = tmp_path / "o.sqlite"
    Outbox(p).close()
    db = sqlite3.connect(p, isolation_level=None)
    db.execute("BEGIN")
    db.execute(
        "INSERT INTO pending(query_id, seq, scanned_at, state, category, number, attempts) "
        "VALUES(?, 1, 1.0, 'UTO', 'P', 'X', 0)",
        (b"x",),
    )
    # connection dropped without COMMIT
    del db
    with Outbox(p) as ob:
        assert ob.pending() == []
