"""The terminal's status heartbeat: a retained status document every
``status_interval`` while the link is up, and at once on a state change or a reconnect.

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
        self._last = float("-inf")

    def due(self, now: float) -> bool:
        """Whether ``interval`` has passed since the last beat (at once before the first)."""
        return now - self._last >= self.interval

    def beat(self, link_up: bool, *, force: bool = False) -> bool:
        """Publish now if the link is up (or ``force``); the schedule restarts either way.
        Whether a status was handed to the port."""
        self._last = self._clock()
        if self.status is None or not (link_up or force):
            return False
        try:
            self.status.publish(self._snapshot())
        except Exception as exc:  # the port's own failure: the next beat says the same
            log.warning("status not published: %s", exc)
            return False
        return True
