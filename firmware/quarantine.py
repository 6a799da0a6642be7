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
