"""The outbox: every accepted scan is on disk before its query is sent.

SQLite in WAL mode with ``synchronous=FULL``, so a ``COMMIT`` is fsynced (the WAL is
flushed to the device) before :meth:`Outbox.add` returns; only then may the query go to
the broker. A row leaves only in :meth:`Outbox.resolve`, when a final verdict has been
recorded in the audit log. After a power cut, :meth:`Outbox.pending` lists what is still
open; the agent re-sends each with its *same* query id (the regional answers a repeated
id idempotently) and tells the officer which verdicts are pending.

Nothing on the card names a document (issue 13, part 4): a row holds the query's
document key only *sealed to the regional's KEM key* (``sealed``, an inner box of
:mod:`firmware.protocol.pending`, made before the row is written), which the kiosk can
re-send but not open. So no document number reaches the database file, its WAL or any
journal, for pending and resolved scans alike. Rows are deleted as soon as the verdict is
recorded, ``secure_delete`` overwrites freed pages, and the file is created mode 0600 in
the state directory. ``audit_seq`` is the audit log's head when the row was written: a
verdict for the query can only be in the log after it, which bounds the scan at start.

An outbox written by an older version (plain ``state``, ``category``, ``number`` columns)
is converted at open when a ``migrate`` sealer is given: every row's key is sealed, the
old table dropped, the file vacuumed and the WAL truncated; without one, opening it is a
:class:`SetupError`.

Scan numbers (``seq``) are per terminal and strictly increasing across restarts; the
officer sees them ("scan #17") so a late verdict can be matched to a document.

A pending query answered from the offline list meanwhile also holds that answer
(:meth:`Outbox.mark_offline`: listed or not, the list's version and age), so that after
a restart, even a kill -9, the online verdict is still judged against it ("cleared
online" after an offline hit). The three columns are nullable and were added after the
first outboxes: an older file gets them at open (``ALTER TABLE ... ADD COLUMN``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.agent.outbox_file import Salvage, check_wal, connect, open_or_salvage
from firmware.errors import SetupError, StorageError

_PENDING = """
CREATE TABLE IF NOT EXISTS pending (
    query_id   BLOB PRIMARY KEY,
    seq        INTEGER NOT NULL UNIQUE,
    scanned_at REAL NOT NULL,      -- wall clock (UNIX seconds), shown to the officer
    sealed     BLOB NOT NULL,      -- the document key sealed to the regional (inner box)
    audit_seq  INTEGER,            -- the audit head when the row was written
    attempts   INTEGER NOT NULL DEFAULT 0
);
"""
_META = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
#: Columns added to ``pending`` after its first release (all nullable: NULL = no
#: offline answer). Additive only: an outbox without them gets them at open.
_OFFLINE_COLUMNS = (
    ("offline_listed", "INTEGER"),  # 1 listed, 0 not listed
    ("offline_list_version", "INTEGER"),
    ("offline_list_age_s", "REAL"),
)


@dataclass(frozen=True)
class OfflineMark:
    """The offline list's answer recorded for a pending query."""

    listed: bool
    list_version: int
    list_age_s: float


_SELECT = "SELECT query_id, seq, scanned_at, sealed, attempts, audit_seq FROM pending"
#: Converts an old row's plain key ``(state, category, number)`` to its sealed box.
Migrate = Callable[[bytes, tuple[str, str, str]], bytes]


@dataclass(frozen=True)
class OutboxEntry:
    """One pending query. ``sealed`` is its document key sealed to the regional."""

    query_id: bytes
    seq: int
    scanned_at: float
    sealed: bytes
    attempts: int
    audit_seq: int | None = None


class Outbox:
    """A durable queue of pending queries (thread-safe: one connection, one lock)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrate: Migrate | None = None,
        seq_floor: int = 0,
        accepted_at: int = 0,
        wall: Callable[[], float] = time.time,
    ):
        """``seq_floor`` is the audit log's head: a lower bound for the scan numbers
        already used (every scan writes at least one audit line). It is used only when the
        outbox was missing, empty or damaged, so scan numbers never restart at 1; each
        such case is in :attr:`alarms` (:mod:`firmware.agent.outbox_file`).

        ``accepted_at`` is the seq of the audit log's newest ``accepted`` line. Every scan
        is committed here (with the audit head before its line, :meth:`audit_seen`)
        before that line is written, so an outbox whose :meth:`audit_seen` is below
        ``accepted_at - 1`` lost commits it had made: its WAL was deleted or rolled back
        while the main file looks sound. That is an alarm and a cross-check, as for a
        missing outbox."""
        self.path = Path(path)
        #: What was found wrong at open (empty when the file was sound).
        self.alarms: list[str] = []
        #: Where damaged files were moved (``<name>.bad-<UTC>``).
        self.put_aside: list[Path] = []
        #: Pending rows may have been lost: compare with the audit log's accepted lines.
        self.needs_cross_check = False
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else None
            check_wal(self, wall)
            db, salvage = open_or_salvage(self, wall) if size else (None, None)
            if db is None:
                self._create(salvage)
            else:
                self._db = db
            if "number" in self._columns():
                self._migrate(migrate)
            self._db.execute(_PENDING)
            self._db.execute(_META)
            self._add_offline_columns()
            if not size and seq_floor > 0:
                what = "missing" if size is None else "empty"
                self.needs_cross_check = True
                self.alarms.append(
                    f"outbox {self.path.name} was {what} although the audit log has "
                    f"{seq_floor} lines: pending scans may be lost"
                )
            behind = accepted_at - 1 - self.audit_seen()
            if size and not self.needs_cross_check and behind > 0:
                self.needs_cross_check = True
                self.alarms.append(
                    f"outbox {self.path.name} is behind the audit log: its last scan was "
                    f"recorded at audit seq {self.audit_seen()}, but the log accepted one at "
                    f"seq {accepted_at} (its WAL was lost or rolled back): pending scans may "
                    "be lost"
                )
            if self.needs_cross_check and seq_floor > self.next_seq() - 1:
                with self._lock:
                    self._set_meta("seq", seq_floor)  # never restart scan numbers at 1
        except sqlite3.Error as exc:
            raise SetupError(f"outbox {self.path}: {exc}") from exc

    def _create(self, salvage: Salvage | None) -> None:
        """A new outbox file (mode 0600): first start, or after a missing, empty or
        damaged one; the rows salvaged from a damaged one go back in."""
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = connect(self.path)
        self._db.execute(_PENDING)
        self._db.execute(_META)
        self._add_offline_columns()
        if salvage is None:
            return
        seq = max([salvage.seq, *(int(r[1]) for r in salvage.rows)])
        self._db.execute("BEGIN IMMEDIATE")
        for row in salvage.rows:
            self._db.execute(
                "INSERT OR IGNORE INTO pending(query_id, seq, scanned_at, sealed, audit_seq, "
                "attempts) VALUES(?, ?, ?, ?, ?, ?)",
                row,
            )
        if seq:
            self._set_meta("seq", seq)
        self._db.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------
    def add(
        self, query_id: bytes, sealed: bytes, scanned_at: float, audit_seq: int | None = None
    ) -> OutboxEntry:
        """Store a new pending query (its sealed key) durably; give it the next scan number."""
        if not isinstance(sealed, bytes):
            raise TypeError("outbox: only a sealed document key is stored")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._next_seq_locked()
                if audit_seq is not None:
                    self._set_meta("audit_seq", audit_seq)
                self._db.execute(
                    "INSERT INTO pending(query_id, seq, scanned_at, sealed, audit_seq) "
                    "VALUES(?, ?, ?, ?, ?)",
                    (query_id, seq, scanned_at, sealed, audit_seq),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"outbox: cannot store a scan: {exc}") from exc
        return OutboxEntry(query_id, seq, scanned_at, sealed, 0, audit_seq)

    def next_seq(self) -> int:
        """The scan number the next :meth:`add` will use (for documents that are not queried)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()
            return (row[0] if row else 0) + 1

    def bump_seq(self) -> int:
        """Consume a scan number without a query (a RESCAN document); durable."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._next_seq_locked()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"outbox: cannot use up a scan number: {exc}") from exc
            return int(seq)

    def attempted(self, query_id: bytes) -> None:
        """Count one more send of a pending query."""
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE pending SET attempts = attempts + 1 WHERE query_id=?", (query_id,)
                )
            except sqlite3.Error as exc:
                raise StorageError(f"outbox: cannot count a send: {exc}") from exc

    def audit_seen(self) -> int:
        """The highest audit seq recorded with a scan: the audit log's head can never be
        below it (a lower head means the log was cut, deleted or replaced)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name='audit_seq'").fetchone()
        return int(row[0]) if row else 0

    def _next_seq_locked(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()
        seq = int(row[0] if row else 0) + 1
        self._set_meta("seq", seq)
        return seq

    def _set_meta(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta(name, value) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    def mark_offline(
        self, query_id: bytes, listed: bool, list_version: int, list_age_s: float
    ) -> bool:
        """Record (durably) the offline list's answer for a pending query; False if the
        query is not pending."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "UPDATE pending SET offline_listed=?, offline_list_version=?, "
                    "offline_list_age_s=? WHERE query_id=?",
                    (int(listed), int(list_version), float(list_age_s), query_id),
                )
            except sqlite3.Error as exc:
                raise StorageError(f"outbox: cannot record an offline answer: {exc}") from exc
        return cur.rowcount > 0

    def offline_marks(self) -> dict[bytes, OfflineMark]:
        """The offline answers recorded for pending queries, by query id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT query_id, offline_listed, offline_list_version, offline_list_age_s "
                "FROM pending WHERE offline_listed IS NOT NULL ORDER BY seq"
            ).fetchall()
        return {
            bytes(qid): OfflineMark(bool(listed), int(version or 0), float(age or 0.0))
            for qid, listed, version, age in rows
        }

    def resolve(self, query_id: bytes) -> OutboxEntry | None:
        """Remove a query whose final verdict has been recorded.

        Returns the entry, or None when it was not pending (already resolved: a duplicate
        verdict, which the caller must then ignore).
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    _SELECT + " WHERE query_id=?",
                    (query_id,),
                ).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM pending WHERE query_id=?", (query_id,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"outbox: cannot resolve a query: {exc}") from exc
        return _entry(row) if row is not None else None

    # -- reading --------------------------------------------------------------------------
    def get(self, query_id: bytes) -> OutboxEntry | None:
        with self._lock:
            row = self._db.execute(
                _SELECT + " WHERE query_id=?",
                (query_id,),
            ).fetchone()
        return _entry(row) if row is not None else None

    def pending(self) -> list[OutboxEntry]:
        """Every pending query, oldest first."""
        with self._lock:
            rows = self._db.execute(_SELECT + " ORDER BY seq").fetchall()
        return [_entry(r) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint and close. Idempotent."""
        with self._lock:
            db, self._db = self._db, None  # type: ignore[assignment]
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _columns(self) -> set[str]:
        return {str(r[1]) for r in self._db.execute("PRAGMA table_info(pending)")}

    def _migrate(self, migrate: Migrate | None) -> None:
        """Seal the plain keys of an outbox from before issue 13, then purge them: old
        table dropped (``secure_delete`` zeroes its pages), file vacuumed, WAL truncated."""
        if migrate is None:
            raise SetupError(
                f"outbox {self.path}: holds plain document keys (an older version); "
                "open it with the regional's KEM key to seal them"
            )
        rows = self._db.execute(
            "SELECT query_id, seq, scanned_at, state, category, number, attempts FROM pending"
        ).fetchall()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE pending RENAME TO pending_plain")
            self._db.execute(_PENDING)
        except sqlite3.Error:
            self._rollback()
            raise
        try:
            for qid, seq, at, state, cat, number, attempts in rows:
                self._db.execute(
                    "INSERT INTO pending(query_id, seq, scanned_at, sealed, attempts) "
                    "VALUES(?, ?, ?, ?, ?)",
                    (qid, seq, at, migrate(bytes(qid), (state, cat, number)), attempts),
                )
            self._db.execute("DROP TABLE pending_plain")
            self._db.execute("COMMIT")
        except Exception:
            self._rollback()
            raise
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _add_offline_columns(self) -> None:
        """Add the columns an outbox from an earlier release lacks (nullable, additive)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(pending)")}
        for name, kind in _OFFLINE_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE pending ADD COLUMN {name} {kind}")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _entry(row: tuple[bytes, int, float, bytes, int, int | None]) -> OutboxEntry:
    qid, seq, at, sealed, attempts, audit_seq = row
    return OutboxEntry(
        bytes(qid),
        int(seq),
        float(at),
        bytes(sealed),
        int(attempts),
        None if audit_seq is None else int(audit_seq),
    )
