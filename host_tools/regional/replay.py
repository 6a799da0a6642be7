"""Replay refusal shared by every regional process: a SQLite file of seen query nonces.

The session layer refuses queries whose timestamp is outside the replay window; inside
the window a nonce may be used once, across all processes of the shared subscription.
``INSERT`` into a primary key is the check-and-record in one statement: it fails for a
nonce already seen. WAL and ``synchronous=OFF`` keep it to a few microseconds (an OS
crash may forget recent nonces; their queries are still inside a two-minute window and
carry the same answer, so a replay after a crash discloses nothing new).

A store that is not a database or fails ``PRAGMA quick_check`` at open (issue 14) is put
aside as ``<name>.bad-<UTC>`` and a new one started, with the alarm in
:attr:`ReplayStore.alarms` (the regional's health). The nonces it held are lost: for one
replay window a query seen before the damage could be answered twice, with the same
answer, which the kiosk's outbox treats as a duplicate.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from firmware.quarantine import reopen_if_damaged

log = logging.getLogger(__name__)


class ReplayStore:
    """``first_use(nonce, now)`` is True once per nonce; call from one thread per instance."""

    def __init__(self, path: Path, window: float, *, prune_every: int = 5000):
        self.path = Path(path)
        self.window = float(window)
        self._prune_every = prune_every
        self._since_prune = 0
        alarm = reopen_if_damaged(self.path, "replay store")
        self.alarms: list[str] = [alarm] if alarm else []
        if alarm:
            log.error("ALARM: %s", alarm)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        _wal_mode(self._db)
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (nonce BLOB PRIMARY KEY, ts REAL NOT NULL) WITHOUT ROWID"
        )
        self._insert = "INSERT INTO seen (nonce, ts) VALUES (?, ?)"
        self.replays = 0

    def first_use(self, nonce: bytes, now: float) -> bool:
        try:
            self._db.execute(self._insert, (nonce, now))
        except sqlite3.IntegrityError:
            self.replays += 1
            return False
        self._since_prune += 1
        if self._since_prune >= self._prune_every:
            self.prune(now)
        return True

    def prune(self, now: float) -> int:
        """Forget nonces older than twice the window (the session layer refuses those)."""
        self._since_prune = 0
        try:
            cur = self._db.execute("DELETE FROM seen WHERE ts < ?", (now - 2 * self.window,))
        except sqlite3.OperationalError as exc:  # busy: another process prunes
            log.debug("replay prune skipped: %s", exc)
            return 0
        return cur.rowcount

    def close(self) -> None:
        self._db.close()


def _wal_mode(db: sqlite3.Connection, attempts: int = 50) -> None:
    """``PRAGMA journal_mode=WAL``, retried: it needs the file to itself for a moment, and
    SQLite does not call the busy handler for it, so K regional processes started at
    once on a new store failed with "database is locked"."""
    for i in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.02 * (i + 1))
