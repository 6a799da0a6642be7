"""Putting a damaged file aside: renamed ``<name>.bad-<UTC>``, never deleted.

Every store that finds its file damaged at start (the kiosk's outbox, audit log and
offline list; the regional's replay and audit stores) keeps what it can, moves the bad
file out of the way with :func:`put_aside` and raises an alarm naming the new path, so a
technician can inspect it later and nothing is silently reset. The rename is followed by
an fsync of the directory, so the move survives a power cut that comes right after.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path


def bad_name(path: Path, wall: Callable[[], float] = time.time) -> Path:
    """``<name>.bad-<UTC, to the second>`` beside ``path``; a suffix ``-N`` if taken."""
    stamp = dt.datetime.fromtimestamp(wall(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    return target


def put_aside(path: Path, wall: Callable[[], float] = time.time) -> Path | None:
    """Rename ``path`` to its :func:`bad_name` (directory fsynced); None if it was absent."""
    if not path.exists():
        return None
    target = bad_name(path, wall)
    os.rename(path, target)
    fsync_dir(path.parent)
    return target


def fsync_dir(directory: Path) -> None:
    """Make renames and creations in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sqlite_damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` (not a database, or a failed
    ``PRAGMA quick_check``); None when it is sound, empty or absent."""
    import sqlite3  # noqa: PLC0415 -- only the stores that use SQLite need it

    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        db.close()
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])


def put_sqlite_aside(path: Path, wall: Callable[[], float] = time.time) -> list[Path]:
    """Move a damaged SQLite file aside with its ``-wal`` and ``-shm`` files."""
    moved = [put_aside(path, wall)]
    for suffix in ("-wal", "-shm"):
        moved.append(put_aside(path.with_name(path.name + suffix), wall))
    return [p for p in moved if p is not None]


def reopen_if_damaged(path: Path, what: str, wall: Callable[[], float] = time.time) -> str | None:
    """Put a damaged SQLite file aside so the store starts a new one; the alarm to raise
    (naming the file it was moved to), or None when the file was sound."""
    problem = sqlite_damage(path)
    if problem is None:
        return None
    moved = put_sqlite_aside(path, wall)
    return f"{what} {path.name} is damaged ({problem}); put aside as {moved[0].name}"
