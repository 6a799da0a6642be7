"""The acknowledge button: ``pressed()`` returns True once per press (an edge, consumed).

The GPIO button is wired between the pin and ground with the internal pull-up on, so
pressed reads low. It is debounced with the injected clock: the level must hold for
``debounce`` seconds before it counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from firmware.errors import SetupError


class ConsoleButton:
    """A button for the console backend: the agent's console reader or a signal calls ``press``."""

    def __init__(self) -> None:
        self._pending = 0

    def press(self) -> None:
        self._pending += 1

    def pressed(self) -> bool:
        if self._pending:
            self._pending -= 1
            return True
        return False

    def close(self) -> None:
        pass


class GpioButton:
    """Active-low push button on a BCM pin, polled and debounced."""

    def __init__(
        self, pin: int, clock: Callable[[], float] = time.monotonic, debounce: float = 0.03
    ) -> None:
        from firmware.signals.gpio import load_gpio  # noqa: PLC0415

        self._gpio = load_gpio()
        self.pin = pin
        self._clock = clock
        self._debounce = debounce
        self._gpio.setup(pin, self._gpio.IN, pull_up_down=self._gpio.PUD_UP)
        self._stable_down = False
        self._candidate: bool | None = None
        self._candidate_since = 0.0

    def pressed(self) -> bool:
        down = self._gpio.input(self.pin) == self._gpio.LOW
        now = self._clock()
        if down != self._candidate:
            self._candidate = down
            self._candidate_since = now
            return False
        if down != self._stable_down and now - self._candidate_since >= self._debounce:
            self._stable_down = down
            return down  # the press edge counts, the release does not
        return False

    def close(self) -> None:
        try:
            self._gpio.cleanup(self.pin)
        except Exception as exc:  # pragma: no cover - hardware only
            raise SetupError(f"gpio: cleanup of pin {self.pin} failed: {exc}") from exc
