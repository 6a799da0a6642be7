"""The acknowledge button: ``pressed()`` returns True once per press (an edge, consumed).

The GPIO button is wired between the pin and ground with the internal pull-up on, so
pressed reads low. It is debounced with the injected clock: the level must hold for
``debounce`` seconds before it counts.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Self, TextIO

from firmware.errors import SetupError

if TYPE_CHECKING:
    from firmware.signals.pins import Pins

log = logging.getLogger(__name__)


class Button:
    """The acknowledge button port: ``pressed()`` is True once per press (the edge is
    consumed); ``close()`` is idempotent."""

    @classmethod
    def from_config(cls, pins: Pins, clock: Callable[[], float]) -> Self:
        """The button as :func:`~firmware.signals.backends.open_button` opens it: every
        backend gets the same arguments and takes what it needs."""
        return cls()

    def pressed(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release the button (nothing to release by default)."""


class ConsoleButton(Button):
    """The console backend's button: ``press()`` (Enter on the terminal, or a test) counts
    one press. Opened from config on a terminal, it reads Enter from standard input."""

    def __init__(self) -> None:
        self._pending = 0
        self._lock = threading.Lock()  # pressed from the key reader, read by the agent loop

    @classmethod
    def from_config(cls, pins: Pins, clock: Callable[[], float]) -> Self:
        button = cls()
        if sys.stdin.isatty():
            button.read_keys(sys.stdin)
            log.warning("console signals: press Enter to acknowledge a possible match")
        return button

    def read_keys(self, stream: TextIO) -> threading.Thread:
        """Count a press for every line read from ``stream``, in a daemon thread (a
        blocking terminal read cannot be interrupted; the thread ends with the process)."""

        def read() -> None:
            for _line in stream:
                self.press()

        t = threading.Thread(target=read, name="console-keys", daemon=True)
        t.start()
        return t

    def press(self) -> None:
        with self._lock:
            self._pending += 1

    def pressed(self) -> bool:
        with self._lock:
            if self._pending:
                self._pending -= 1
                return True
        return False


class GpioButton(Button):
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

    @classmethod
    def from_config(cls, pins: Pins, clock: Callable[[], float]) -> Self:
        return cls(pins.button, clock)

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
