"""Hits and their follow-up, kept in SQLite (``console.sqlite`` in the desk's directory).

A hit is an alert the desk opened and verified (:func:`firmware.protocol.alerts.verify_alert`),
stored once per ``query_id``. Its workflow::

    new -> acknowledged (a supervisor is on the way) -> confirmed | false_match | referred

Each step records a note, who took it and when. A hit still ``new`` after
``escalate_after`` seconds is *escalated* (shown so on the page). A hit is *late* when it
answers a scan that the kiosk first answered offline or while its link was down: the
regional service says so in the signed alert (``late``, see host_tools/console/feed.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NEW = "new"
ACKNOWLEDGED = "acknowledged"
CLOSED = ("confirmed", "false_match", "referred")
#: Which step may follow which state.
NEXT: dict[str, tuple[str, ...]] = {NEW: (ACKNOWLEDGED,), ACKNOWLEDGED: CLOSED}
MAX_NOTE = 2000

SCHEMA = """
CREATE TABLE IF NOT EXISTS hits (
    id INTEGER PRIMARY KEY, query_id TEXT UNIQUE NOT NULL, terminal TEXT NOT NULL,
    site TEXT, t REAL NOT NULL, received REAL NOT NULL, status TEXT NOT NULL,
    reporting_country TEXT NOT NULL, reference TEXT NOT NULL, list_version INTEGER,
    dkh TEXT NOT NULL, late INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    hit_id INTEGER NOT NULL, state TEXT NOT NULL, note TEXT NOT NULL, who TEXT NOT NULL,
    t REAL NOT NULL);
"""


_SELECT = (
    "SELECT id, query_id, terminal, site, t, received, status, reporting_country, "
    "reference, list_version, late, state FROM hits "
)


class WorkflowError(ValueError):
    """A step that may not be taken (unknown hit, wrong order, note too long)."""


@dataclass(frozen=True)
class Step:
    state: str
    note: str
    who: str
    t: float


@dataclass(frozen=True)
class Hit:
    id: int
    query_id: str
    terminal: str
    site: str | None
    t: float
    received: float
    status: str
    reporting_country: str
    reference: str
    list_version: int | None
    late: bool
    state: str
    steps: tuple[Step, ...]

    def escalated(self, now: float, after: float) -> bool:
        return self.state == NEW and now - self.received >= after

    @property
    def closed(self) -> bool:
        return self.state in CLOSED


class HitStore:
    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time):
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, body: dict[str, Any], *, site: str | None, late: bool) -> Hit | None:
        """Store a verified alert body; None when this query's hit is already stored."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO hits (query_id, terminal, site, t, received, status, "
                "reporting_country, reference, list_version, dkh, late, state) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    str(body["query_id"]), str(body["terminal"]), site, float(body["t"]),
                    self._clock(), str(body["status"]), str(body["reporting_country"]),
                    str(body["reference"]), body["list_version"], str(body["dkh"]),
                    int(late), NEW,
                ),
            )  # fmt: skip
            if cur.rowcount == 0:
                return None
            hit_id = cur.lastrowid
        assert hit_id is not None
        return self.get(hit_id)

    def step(self, hit_id: int, state: str, note: str, who: str) -> Hit:
        """Move a hit on; :class:`WorkflowError` if ``state`` may not follow its current."""
        if len(note) > MAX_NOTE:
            raise WorkflowError(f"note: {len(note)} characters, at most {MAX_NOTE}")
        with self._lock:
            row = self._db.execute("SELECT state FROM hits WHERE id=?", (hit_id,)).fetchone()
            if row is None:
                raise WorkflowError(f"no hit {hit_id}")
            if state not in NEXT.get(row[0], ()):
                raise WorkflowError(f"hit {hit_id} is {row[0]}: it cannot become {state}")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE hits SET state=? WHERE id=?", (state, hit_id))
            self._db.execute(
                "INSERT INTO steps VALUES (?,?,?,?,?)", (hit_id, state, note, who, self._clock())
            )
            self._db.execute("COMMIT")
        return self.get(hit_id)

    def get(self, hit_id: int) -> Hit:
        hits = self._select("WHERE id=?", (hit_id,))
        if not hits:
            raise WorkflowError(f"no hit {hit_id}")
        return hits[0]

    def all(self, limit: int = 500) -> list[Hit]:
        return self._select("ORDER BY id DESC LIMIT ?", (limit,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Hit]:
        with self._lock:
            sql = _SELECT + where  # the callers' fixed WHERE/ORDER clauses; values are bound
            rows = self._db.execute(sql, args).fetchall()
            steps: dict[int, list[Step]] = {}
            for r in rows:
                steps[r[0]] = [
                    Step(*s)
                    for s in self._db.execute(
                        "SELECT state, note, who, t FROM steps WHERE hit_id=? ORDER BY rowid",
                        (r[0],),
                    )
                ]
        return [
            Hit(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                bool(r[10]), r[11], tuple(steps[r[0]]),
            )
            for r in rows
        ]  # fmt: skip

    def close(self) -> None:
        self._db.close()
