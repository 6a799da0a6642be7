"""FAULT on the kiosk when the agent refuses to start (issue 14).

A probe found that a refusal at start (bad config value, unreadable key or state) left
the LEDs and display dark while systemd restarted the agent until its start limit: the
officer saw nothing. Now the refusal is shown: the FAULT pattern (red slow blink, one
long beep) and the FAULT screen with the reason, for ``hold`` seconds (default 30, so
ten restarts span more than the unit's 300 s ``StartLimitIntervalSec`` and the pattern
stays lit between them), then the process exits with its error as before.

Signals need the configuration's ``[signals]`` section: a file that cannot be read at
all leaves nothing to open, and is only logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from firmware.agent.states import FAULT, View

log = logging.getLogger(__name__)

#: How long a refusal stays on the signals before the process exits (s).
HOLD = 30.0


def fault_view(reason: str, now: float) -> View:
    """The FAULT screen with the refusal's reason (no scan, no link)."""
    return View(FAULT, now, None, reason[:160], False, False, (), ())


def show_refusal(
    signals: Any, open_signals: Callable[[], Any] | None, reason: str, clock: Callable[[], float]
) -> Any:
    """Show FAULT on ``signals`` (opened with ``open_signals`` when None); returns the
    signals shown on, or None when none could be opened."""
    if signals is None and open_signals is not None:
        try:
            signals = open_signals()
        except Exception:
            log.exception("refusal: the signals could not be opened to show FAULT")
            return None
    if signals is None:
        return None
    try:
        signals.show(fault_view(reason, clock()), clock())
    except Exception:
        log.exception("refusal: FAULT could not be shown")
        return None
    return signals


def hold_fault(
    signals: Any, seconds: float, stop: threading.Event, clock: Callable[[], float]
) -> None:
    """Keep the FAULT pattern going (blinks need updates) for ``seconds`` or until stop."""
    end = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < end:
        try:
            signals.update(clock())
        except Exception:
            log.exception("refusal: signal update failed")
            return
        stop.wait(0.05)
