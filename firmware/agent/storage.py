"""Free space on the card: when to refuse new scans, and when to say space is back.

A probe found that a full state directory crashed the agent on every scan (8 exits in
21 s) and left the kiosk dark. Now a write that fails raises
:class:`~firmware.errors.StorageError` and the core shows STORAGE_FULL; this guard adds
two things:

- a **reserve**: a new scan is accepted only while at least ``reserve`` bytes are free,
  so verdicts for scans already accepted still find room for their audit line and
  outbox delete;
- the **way back**: while STORAGE_FULL is shown, every ``interval`` s it checks that the
  reserve is free again and that a small file can be written and fsynced in the state
  directory; only then does the screen go back to READY.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

#: Keep this much free for verdicts of accepted scans (bytes).
RESERVE = 1 << 20
#: How often the way back is tried while the storage-full screen is shown (s).
INTERVAL = 2.0
_PROBE = ".fieldterm-space-probe"


class StorageGuard:
    """Free-space checks on one directory. ``directory`` None: no checks (tests)."""

    def __init__(
        self,
        directory: Path | None,
        *,
        reserve: int = RESERVE,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.directory = directory
        self.reserve = reserve
        self.interval = interval
        self._clock = clock
        self._tried = float("-inf")

    def free(self) -> int | None:
        """Bytes an unprivileged writer may still use there (None: unknown)."""
        if self.directory is None:
            return None
        try:
            st = os.statvfs(self.directory)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def shortage(self) -> str | None:
        """Why a new scan must not be accepted now (None: there is room)."""
        free = self.free()
        if free is None or free >= self.reserve:
            return None
        return f"{free} bytes free in {self.directory}, {self.reserve} kept for verdicts"

    def due(self) -> bool:
        """Whether to try the way back now (at most every ``interval`` s)."""
        now = self._clock()
        if now - self._tried < self.interval:
            return False
        self._tried = now
        return True

    def writable(self) -> bool:
        """The reserve is free and a probe file can be written and fsynced."""
        if self.directory is None:
            return True
        if self.shortage() is not None:
            return False
        probe = self.directory / _PROBE
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, bytes(4096))
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError:
            try:
                probe.unlink()
            except OSError:
                pass
            return False
        return True
