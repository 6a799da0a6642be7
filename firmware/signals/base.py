"""The LED/buzzer panel: a thick base that turns a state into channel levels over time.

Backends implement ``_set(channel, on)`` (and ``_close()`` if they hold a resource); the
base decides *when* each channel changes, from the pattern and the time since the state
was shown, and calls ``_set`` only on a change. Time always comes from the caller, so a
test drives a whole blink sequence with a fake clock and no sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from firmware.errors import OperationError
from firmware.signals.patterns import CHANNELS, DISCREET_SOUNDS, PATTERNS, Pattern

if TYPE_CHECKING:
    from firmware.signals.pins import Pins

log = logging.getLogger(__name__)


class SignalPanel:
    """LEDs (green, amber, red) and a buzzer showing one state's pattern at a time."""

    channels = CHANNELS

    def __init__(self, *, buzzer: bool = True) -> None:
        self._levels = dict.fromkeys(CHANNELS, False)
        self._pattern: Pattern | None = None
        self._since = 0.0
        self._buzzer = buzzer
        #: ``[signals] discreet``: a possible match beeps as a clear (see DISCREET_SOUNDS)
        self.discreet = False
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_config(
        cls, pins: Pins, clock: Callable[[], float] | None, *, buzzer: bool = True
    ) -> Self:
        """The panel as :func:`~firmware.signals.backends.open_panel` opens it: every
        backend gets the same arguments and takes what it needs (here: none of the pins)."""
        return cls(buzzer=buzzer)

    # -- backend primitive -------------------------------------------------------------
    def _set(self, channel: str, on: bool) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release the backend's resources (after every channel is off)."""

    # -- public API --------------------------------------------------------------------
    @property
    def state(self) -> str | None:
        return self._pattern.state if self._pattern else None

    @property
    def levels(self) -> dict[str, bool]:
        return dict(self._levels)

    def show(self, state: str, now: float) -> None:
        """Start showing ``state``'s pattern from ``now``."""
        try:
            pattern = PATTERNS[state]
        except KeyError:
            raise OperationError(f"signals: no pattern for state {state!r}") from None
        with self._lock:
            if self._closed:
                return
            self._pattern = pattern
            self._since = now
            self._apply(now)

    def update(self, now: float) -> None:
        """Bring every channel to the level the pattern gives at ``now``."""
        with self._lock:
            if not self._closed and self._pattern is not None:
                self._apply(now)

    def off(self) -> None:
        """Every channel off; the panel stays usable."""
        with self._lock:
            self._pattern = None
            self._all_off()

    def close(self) -> None:
        """Every channel off and the backend released. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._pattern = None
            self._all_off()
            self._closed = True
            try:
                self._close()
            except Exception:
                log.exception("signal backend close failed")

    def __enter__(self) -> SignalPanel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
    def _apply(self, now: float) -> None:
        assert self._pattern is not None
        t = now - self._since
        sound = self._pattern
        if self.discreet and sound.state in DISCREET_SOUNDS:
            sound = PATTERNS[DISCREET_SOUNDS[sound.state]]
        for channel in CHANNELS:
            on = (sound if channel == "buzzer" else self._pattern).level(channel, t)
            if channel == "buzzer" and not self._buzzer:
                on = False
            self._change(channel, on)

    def _all_off(self) -> None:
        for channel in CHANNELS:
            self._change(channel, False)

    def _change(self, channel: str, on: bool) -> None:
        if self._levels[channel] != on:
            self._levels[channel] = on
            self._set(channel, on)


class SignalDriver:
    """A thread that animates a panel: ``update(clock())`` every ``period`` seconds."""

    def __init__(self, panel: SignalPanel, clock: Callable[[], float], period: float = 0.02):
        self.panel = panel
        self.clock = clock
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signal-driver", daemon=True)

    def start(self) -> SignalDriver:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.panel.update(self.clock())
            except Exception:
                log.exception("signal update failed")

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
