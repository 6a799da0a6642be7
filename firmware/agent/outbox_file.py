"""Opening the outbox's SQLite file, and what is done when it is damaged (issue 14).

A probe found that an outbox file that was empty, missing or had a bad WAL was silently
re-created (pending scans lost, scan numbers restarting at 1), and that a corrupt page
gave a raw ``sqlite3.DatabaseError`` traceback. Now, at open:

- a WAL whose header is not a valid SQLite WAL header (magic, version, checksum) would be
  ignored by SQLite, dropping the transactions in it: it is put aside
  (``outbox.sqlite-wal.bad-<UTC>``) and an alarm raised;
- a file that is not a database, or fails ``PRAGMA quick_check``, is read for every
  pending row still readable (a table scan, row by row, stopping at the damage), put
  aside with its WAL and shared-memory files, and re-created with the rows it kept;
- in each of these cases, and when the file is missing or empty although the audit log
  has lines, the outbox says so in ``alarms`` and ``needs_cross_check``: the agent then
  compares the audit log's ``accepted`` lines with the rows kept, and names the scans
  that were lost (:meth:`firmware.agent.audit.AuditLog.unanswered`).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from firmware.errors import SetupError
from firmware.quarantine import put_aside, put_sqlite_aside

#: The two valid WAL magic numbers (the low bit names the checksum's byte order).
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_VERSION = 3007000
_ROW = "SELECT query_id, seq, scanned_at, sealed, audit_seq, attempts FROM pending"

Row = tuple[Any, ...]


@dataclass
class Salvage:
    """What was read from a damaged outbox: its pending rows and its scan counter."""

    rows: list[Row] = field(default_factory=list)
    seq: int = 0


class DamageReport(Protocol):
    """The outbox as this module reports to it."""

    path: Path
    alarms: list[str]
    put_aside: list[Path]
    needs_cross_check: bool


def connect(path: Path) -> sqlite3.Connection:
    """The outbox connection: WAL, ``synchronous=FULL`` (each COMMIT fsynced),
    ``secure_delete`` (freed pages zeroed)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        db.close()
        raise SetupError(f"outbox {path}: WAL mode refused (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def wal_header_ok(header: bytes) -> bool:
    """Whether ``header`` (the WAL's first 32 bytes) is a valid SQLite WAL header."""
    if len(header) < 32:
        return False
    magic, version = struct.unpack(">II", header[:8])
    if magic not in _WAL_MAGIC or version != _WAL_VERSION:
        return False
    order = ">" if magic & 1 else "<"
    words = struct.unpack(order + "6I", header[:24])
    s0 = s1 = 0
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return (s0, s1) == struct.unpack(">II", header[24:32])


def check_wal(outbox: DamageReport, wall: Callable[[], float]) -> None:
    """Put a WAL with a bad header aside (SQLite would silently drop what is in it)."""
    wal = outbox.path.with_name(outbox.path.name + "-wal")
    try:
        with open(wal, "rb") as fh:
            header = fh.read(32)
    except FileNotFoundError:
        return
    if not header or wal_header_ok(header):
        return
    moved = [p for p in (put_aside(wal, wall), _shm_aside(outbox.path, wall)) if p]
    outbox.put_aside.extend(moved)
    outbox.needs_cross_check = True
    outbox.alarms.append(
        f"outbox {outbox.path.name}: its WAL is damaged (bad header); put aside as "
        f"{moved[0].name}: scans committed only there may be lost"
    )


def open_or_salvage(
    outbox: DamageReport, wall: Callable[[], float]
) -> tuple[sqlite3.Connection | None, Salvage | None]:
    """Open a non-empty outbox file; if it is damaged, keep its readable rows, put the
    files aside and return what was kept (the caller re-creates the file)."""
    try:
        db = connect(outbox.path)
    except sqlite3.DatabaseError as exc:
        return None, _aside(outbox, str(exc), Salvage(), wall)
    problem = _integrity_problem(db)
    if problem is None:
        return db, None
    salvage = _readable(db)
    db.close()
    return None, _aside(outbox, problem, salvage, wall)


def _integrity_problem(db: sqlite3.Connection) -> str | None:
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows[:3])


def _readable(db: sqlite3.Connection) -> Salvage:
    """Every pending row and the scan counter that can still be read (stops at damage)."""
    out = Salvage()
    try:
        cur = db.execute(_ROW)
        while (row := cur.fetchone()) is not None:
            out.rows.append(tuple(row))
    except sqlite3.DatabaseError:
        pass
    try:
        row = db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()
        out.seq = int(row[0]) if row else 0
    except (sqlite3.DatabaseError, TypeError, ValueError):
        pass
    return out


def _aside(outbox: DamageReport, problem: str, salvage: Salvage, wall: Callable[[], float]):
    path = outbox.path
    moved = put_sqlite_aside(path, wall)
    outbox.put_aside.extend(moved)
    outbox.needs_cross_check = True
    outbox.alarms.append(
        f"outbox {path.name} is damaged ({problem}); put aside as "
        f"{moved[0].name if moved else '?'}; {len(salvage.rows)} pending scans kept"
    )
    return salvage


def _shm_aside(path: Path, wall: Callable[[], float]) -> Path | None:
    # The shared-memory index describes the WAL that was moved: never reuse it.
    return put_aside(path.with_name(path.name + "-shm"), wall)
