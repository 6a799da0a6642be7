"""The agent's optional events file: JSON lines of what the officer was shown.

Format and event names: docs/architecture.md ("Terminal agent"). The demo and the
end-to-end tests read it to observe outcomes; it never holds MRZ text or document numbers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class EventLog:
    """Optional JSON-lines file of what the officer was shown (for the demo and tests).

    It holds scan numbers, query ids, states and outcomes: never MRZ text or document
    numbers. Each line is flushed at once.
    """

    def __init__(self, path: Path | None, wall: Callable[[], float] = time.time):
        self._wall = wall
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        if self._fh is None:
            return
        rec = {"t": round(self._wall(), 3), "event": event, "pid": os.getpid(), **fields}
        self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
