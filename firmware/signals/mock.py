"""Recording backends for tests and demos: they remember everything they were told.

``MockPanel.history`` is ``[(t, channel, on), ...]``; ``timeline("red")`` gives one
channel's edges so a test asserts a whole blink sequence in one line. The time stamp is
the ``now`` the agent passed to ``show``/``update``, so it follows the injected clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from firmware.signals.base import SignalPanel
from firmware.signals.button import Button

if TYPE_CHECKING:
    from firmware.signals.pins import Pins


class MockPanel(SignalPanel):
    """A panel that records ``(t, channel, on)`` for every change."""

    def __init__(self, *, buzzer: bool = True) -> None:
        super().__init__(buzzer=buzzer)
        self.history: list[tuple[float, str, bool]] = []
        self.states: list[tuple[float, str]] = []
        self.closed = False
        self._now = 0.0

    def show(self, state: str, now: float) -> None:
        self._now = now
        self.states.append((now, state))
        super().show(state, now)

    def update(self, now: float) -> None:
        self._now = now
        super().update(now)

    def _set(self, channel: str, on: bool) -> None:
        self.history.append((round(self._now, 6), channel, on))

    def _close(self) -> None:
        self.closed = True

    def timeline(self, channel: str) -> list[tuple[float, bool]]:
        return [(t, on) for t, ch, on in self.history if ch == channel]


class MockButton(Button):
    """An acknowledge button pressed by the test: ``press()``, then ``pressed()`` is True once."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._pending = 0
        self.presses = 0
        self.closed = False

    @classmethod
    def from_config(cls, pins: Pins, clock: Callable[[], float]) -> Self:
        return cls(clock)

    def press(self) -> None:
        self._pending += 1
        self.presses += 1

    def pressed(self) -> bool:
        if self._pending:
            self._pending -= 1
            return True
        return False

    def close(self) -> None:
        self.closed = True
