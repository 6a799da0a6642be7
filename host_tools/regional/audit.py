"""The regional audit trail: one SQLite row per answered or refused query.

Rows hold time, terminal, query id, the keyed hash of the document key (never the
document number), outcome or refusal reason, and list version. A writer thread drains
a queue and commits in batches so the query path only appends to a queue. After the
first row of a batch it lingers (50 ms) so that it wakes a few times a second rather
than once per query: each wake-up is a thread switch that lands on the query path (with
the query client's sweeper change, the benchmark's serial p50 ratio to the plaintext echo
fell from 1.77-2.11 to 1.19-1.93).

Retention (issue 13): rows older than ``retention`` seconds (``[regional]
audit_retention_days``, default 365) are deleted by the same writer thread, at start and
then every ``prune_every`` seconds, so the trail holds a bounded window of history and
never grows without end. ``pruned`` counts the rows removed.

Durable before the answer (issue 14: a probe lost 3 of 1067 rows to a SIGKILL, because
the answer was published before its row was written): :meth:`AuditTrail.record` takes
``then``, the publication of the answer, and the writer thread calls it only after the
batch holding the row is committed (``synchronous=FULL``: fsynced). A row with an answer
waiting on it does not linger: the writer commits what is queued at once (group commit:
the rows that arrive during one fsync go in the next), so durability costs an answer one
fsync, not the 50 ms linger. A batch that cannot be committed publishes nothing; the
kiosk's query stays pending and is re-sent.

A hit's alert (issue 14: 31 of 93 alerts were lost to a SIGKILL while they queued in
memory) is written by the same commit: ``record(..., alert=body)`` inserts the alert body
into the ``alert_queue`` table of this database in the transaction that holds its audit
row, so an answer that went out always has its alert on disk too
(:mod:`host_tools.regional.alert_batcher` drains the queue).

Audit anchors (issue 14): a kiosk puts its own audit chain head (seq, MAC) in each query;
the same commit stores it as that terminal's anchor (table ``anchors``, the latest one
received), and :class:`AnchorStore` reads the anchor on record for the answer, so a kiosk
whose card lost, cut or replaced its audit log is told what the regional saw before.

Damage (issue 14): a trail that is not a database or fails ``PRAGMA quick_check`` at
open is put aside as ``<name>.bad-<UTC>`` (with its WAL) and a new one started; the
alarm is in :attr:`AuditTrail.alarms` (the regional's health).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.quarantine import reopen_if_damaged
from host_tools.regional.alert_batcher import ALERT_SCHEMA, queue_alert

log = logging.getLogger(__name__)

Row = tuple[float, str, bytes | None, str | None, str, int | None]
#: A row, what to do once it is durable (publish the answer) or None, and the hit alert
#: body to queue in the same transaction, or None.
Item = tuple[Row, Callable[[], None] | None, dict[str, Any] | None, tuple[int, bytes] | None]

_ANCHORS = """
CREATE TABLE IF NOT EXISTS anchors (
    terminal TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,      -- the kiosk's audit seq it sent with its last query
    mac TEXT NOT NULL,         -- that line's chain MAC (hex)
    t REAL NOT NULL
)
"""
_UPSERT = (
    "INSERT INTO anchors VALUES (?, ?, ?, ?) ON CONFLICT(terminal) DO UPDATE "
    "SET seq = excluded.seq, mac = excluded.mac, t = excluded.t"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    t REAL NOT NULL,           -- unix time the regional handled it
    terminal TEXT NOT NULL,
    query_id BLOB,             -- 16 bytes; NULL for refused queries that never opened
    dkh TEXT,                  -- keyed BLAKE2b-64 of the document key, 16 hex
    outcome TEXT NOT NULL,     -- NO_MATCH, POSSIBLE_MATCH, ERROR or REFUSED:<reason>
    list_version INTEGER
)
"""


class AuditTrail:
    """``record(...)`` is non-blocking; ``close()`` flushes and stops (idempotent)."""

    def __init__(
        self,
        path: Path,
        *,
        batch: int = 500,
        linger: float = 0.05,
        retention: float | None = 365 * 86400.0,
        prune_every: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self.retention = retention
        self._prune_every = prune_every
        self._clock = clock
        self._next_prune = float("-inf")
        self.pruned = 0
        self._q: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._batch = batch
        self._linger = linger
        self._stopping = threading.Event()
        self.written = 0
        self.failed = 0  # rows not written (their answers not sent)
        alarm = reopen_if_damaged(self.path, "regional audit trail")
        self.alarms: list[str] = [alarm] if alarm else []
        if alarm:
            log.error("ALARM: %s", alarm)
        db = sqlite3.connect(str(self.path))
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        db.executescript(ALERT_SCHEMA)
        db.executescript(_ANCHORS)
        db.commit()
        db.close()
        self._closed = False
        self._db: sqlite3.Connection | None = None  # the writer thread's connection
        self._thread = threading.Thread(target=self._run, name="regional-audit", daemon=True)
        self._thread.start()

    def record(  # noqa: PLR0917 -- one positional per audit column, on the hot path
        self,
        t: float,
        terminal: str,
        query_id: bytes | None,
        dkh: str | None,
        outcome: str,
        list_version: int | None,
        then: Callable[[], None] | None = None,
        alert: dict[str, Any] | None = None,
        head: tuple[int, bytes] | None = None,
    ) -> None:
        """Queue a row; ``then`` runs (writer thread) once the row is committed, together
        with ``alert`` (a hit alert body) in the alert queue and ``head`` (the kiosk's
        audit head) as the terminal's anchor."""
        row = (t, terminal, query_id, dkh, outcome, list_version)
        self._q.put((row, then, alert, head))

    def prune(self, db: sqlite3.Connection) -> int:
        """Delete the rows older than the retention period (writer thread); how many."""
        if self.retention is None:
            return 0
        try:
            with db:
                cur = db.execute("DELETE FROM audit WHERE t < ?", (self._clock() - self.retention,))
        except sqlite3.Error as exc:  # busy with another process: the next round does it
            log.warning("audit retention: prune skipped: %s", exc)
            return 0
        self.pruned += cur.rowcount
        if cur.rowcount:
            log.info("audit retention: %d rows older than %.0f days deleted", cur.rowcount,
                     self.retention / 86400)  # fmt: skip
        return cur.rowcount

    def _maybe_prune(self, db: sqlite3.Connection) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self._prune_every
            self.prune(db)

    def _get(self) -> Item | None:
        """The next row, waking at least every ``prune_every`` for the retention."""
        while True:
            try:
                return self._q.get(timeout=min(self._prune_every, 60.0))
            except queue.Empty:
                if self._db is not None:
                    self._maybe_prune(self._db)

    def _run(self) -> None:
        db = sqlite3.connect(str(self.path))
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA synchronous=FULL")
        self._db = db
        self._maybe_prune(db)
        stop = False
        while not stop:
            self._maybe_prune(db)
            item = self._get()
            items: list[Item] = []
            if item is None:
                stop = True
            else:
                items.append(item)
                if item[1] is None:  # nobody waits on this row: let the batch fill
                    self._stopping.wait(self._linger)  # close() cuts it short
            while len(items) < self._batch:
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                items.append(more)
            if items:
                self._commit(db, items)
        self._db = None
        db.close()

    def _commit(self, db: sqlite3.Connection, items: list[Item]) -> None:
        """Write one batch; only then publish the answers it holds. A batch with a row SQLite
        refuses is written again row by row, so that row costs only its own answer (the
        kiosk asks again), never the batch's, and never the writer thread: every later
        answer waits on it. A database error (busy, I/O, full) costs the batch's answers."""
        try:
            self._write(db, items)
        except sqlite3.OperationalError:  # busy, I/O, full: the database, not a row
            self.failed += len(items)
            log.exception("audit write failed (%d rows): their answers are not sent", len(items))
            return
        except Exception:  # a row SQLite refuses; the writer thread must go on
            if len(items) > 1:
                for item in items:
                    self._commit(db, [item])
                return
            self.failed += 1
            log.exception("audit row of %r refused: its answer is not sent", items[0][0][1][:64])
            return
        self.written += len(items)
        for _, then, _, _ in items:
            if then is None:
                continue
            try:
                then()
            except Exception:
                log.exception("publishing an audited answer failed")

    def _write(self, db: sqlite3.Connection, items: list[Item]) -> None:
        with db:
            db.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)", [i[0] for i in items])
            for row, _, alert, head in items:
                if alert is not None:
                    queue_alert(db, row[0], alert)
                if head is not None:
                    db.execute(_UPSERT, (row[1], head[0], head[1].hex(), row[0]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._q.put(None)
        self._thread.join(timeout=10.0)


class AnchorStore:
    """Reads the terminals' audit anchors (the table the writer keeps), one connection
    for the query thread; shared by every process on the database."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.executescript(_ANCHORS)

    def get(self, terminal: str) -> tuple[int, str]:
        """The anchor on record for ``terminal``: (seq, MAC hex), or (0, "") if none."""
        try:
            row = self._db.execute(
                "SELECT seq, mac FROM anchors WHERE terminal = ?", (terminal,)
            ).fetchone()
        except sqlite3.Error as exc:  # busy: the kiosk's next answer carries it
            log.warning("audit anchor of %s not read: %s", terminal, exc)
            return (0, "")
        return (int(row[0]), str(row[1])) if row else (0, "")

    def close(self) -> None:
        self._db.close()
