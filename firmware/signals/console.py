"""A console LED/buzzer panel: one readable line per state, with the pattern in words.

Blink edges are not printed (they would flood the terminal); the line names the
pattern so a person can tell the four answers apart without colour.
"""

from __future__ import annotations

import sys
from typing import TextIO

from firmware.signals.base import SignalPanel
from firmware.signals.patterns import PATTERNS


class ConsolePanel(SignalPanel):
    def __init__(self, stream: TextIO | None = None, *, buzzer: bool = True) -> None:
        super().__init__(buzzer=buzzer)
        self.stream = stream or sys.stdout

    def show(self, state: str, now: float) -> None:
        if state != self.state:
            pattern = PATTERNS.get(state)
            words = pattern.describe() if pattern else "?"
            self.stream.write(f"[signals] {state.upper():<15} {words}\n")
            self.stream.flush()
        super().show(state, now)

    def _set(self, channel: str, on: bool) -> None:
        """Levels are kept by the base; the console shows the pattern, not each edge."""
