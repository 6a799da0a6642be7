"""Follow an agent's events file (``[agent] events_file``: one JSON object per line).

The agent reports every state change, verdict and link change there, never a document
number; the demo and the tests read what the officer was shown from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_tools.localregion.errors import LocalRegionError

Event = dict[str, Any]


class EventTail:
    """Reads new lines as they come; :meth:`wait` returns the first match after a mark."""

    def __init__(self, path: Path):
        self.path = path
        self.events: list[Event] = []
        self._pos = 0
        self._buf = b""

    def poll(self) -> list[Event]:
        """Read what was appended since the last call; returns the new events."""
        new: list[Event] = []
        if not self.path.exists():
            return new
        with self.path.open("rb") as fh:
            fh.seek(self._pos)
            data = fh.read()
        self._pos += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            if raw.strip():
                new.append(json.loads(raw))
        self.events.extend(new)
        return new

    def mark(self) -> int:
        """The position to wait from: events from now on."""
        self.poll()
        return len(self.events)

    def wait(
        self,
        pred: Callable[[Event], bool],
        timeout: float,
        start: int = 0,
        what: str = "the agent",
        alive: Callable[[], bool] | None = None,
    ) -> Event:
        """The first event at or after ``start`` that satisfies ``pred`` (bounded wait;
        fails at once when ``alive`` says the agent's process is gone)."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            self.poll()
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = max(seen, len(self.events))
            if alive is not None and not alive():
                raise LocalRegionError(f"the agent exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise LocalRegionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.02)
