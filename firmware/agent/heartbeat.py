"""The terminal's status heartbeat: a retained status document on a fixed schedule,
every ``status_interval`` while the link is up, and once more when the link comes back.

Never on a state change (issue 13): a status published when a verdict changes the screen
told the broker every verdict by its timing (a miss was followed by a status 5 s later,
when CLEAR returned to IDLE; a hit by silence until the acknowledgement). The schedule's
phase is fixed at start: a beat, forced or not, never moves the next one, so the gaps
between status messages are the same whatever the kiosk is showing. A reconnect's beat is
no leak: the broker sees the reconnect itself.

A status that cannot be published is logged and dropped: the next beat carries the
same figures, so nothing is lost by skipping one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from firmware.agent.ports import StatusPort

log = logging.getLogger(__name__)


class StatusHeartbeat:
    """Publishes ``snapshot()`` through a :class:`~firmware.agent.ports.StatusPort`
    (None: no status at all) and keeps the schedule."""

    def __init__(
        self,
        status: StatusPort | None,
        snapshot: Callable[[], dict[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 60.0,
    ):
        self.status = status
        self._snapshot = snapshot
        self._clock = clock
        self.interval = interval
        self._next: float | None = None  # the first scheduled beat is due at once

    def due(self, now: float) -> bool:
        """Whether the next scheduled beat is due (at once before the first)."""
        return self._next is None or now >= self._next

    def beat(self, link_up: bool, *, force: bool = False) -> bool:
        """Publish now if the link is up (or ``force``). A scheduled beat (not ``force``)
        advances the schedule by whole intervals, so its phase never drifts; a forced one
        leaves it alone. Whether a status was handed to the port."""
        now = self._clock()
        if not force:
            if self._next is None:
                self._next = now
            while self._next <= now:
                self._next += self.interval
        if self.status is None or not (link_up or force):
            return False
        try:
            self.status.publish(self._snapshot())
        except Exception as exc:  # the port's own failure: the next beat says the same
            log.warning("status not published: %s", exc)
            return False
        return True
