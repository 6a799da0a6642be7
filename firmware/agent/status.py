"""The terminal's retained status message and its last will.

Topic ``ft/v1/<region>/status/<terminal>`` (built by :mod:`firmware.protocol.topics`),
QoS 1, retained. Payloads are JSON::

    {"terminal": "kiosk-001", "state": "online", "t": 1764342131.2, "version": "0.1.0",
     "pending": 0, "documents": 12, "audit_head": {"seq": 40, "mac": "<64 hex>"}}

and the last will, registered with the broker at connect time, is::

    {"terminal": "kiosk-001", "state": "offline"}

so a monitor sees "offline" when the kiosk vanishes without a goodbye. On a clean stop
the agent publishes the offline payload itself. The status never says what was scanned
or what a verdict was (the broker must not learn about hits); ``audit_head`` anchors the
audit log from outside, so a log cut at the end is detectable (see audit.py).

Every payload, the will included, is padded with JSON whitespace to :data:`STATUS_SIZE`
bytes (a multiple of it in the unexpected case of a longer document), and the heartbeat
publishes on a fixed schedule, never on a screen change (issue 13): neither the size nor
the time of a status message says anything about a verdict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from firmware import __version__

PublishFn = Callable[[str, bytes, int, bool], Any]
#: Every status payload is this long (JSON padded with trailing spaces).
STATUS_SIZE = 1024


def pad_status(raw: bytes) -> bytes:
    """``raw`` JSON padded with spaces to :data:`STATUS_SIZE` (or a multiple of it);
    trailing whitespace is valid JSON, so any reader parses it unchanged."""
    size = max(1, -(-len(raw) // STATUS_SIZE)) * STATUS_SIZE
    return raw + b" " * (size - len(raw))


def status_topic(region: str, terminal: str) -> str:
    """The status topic, from the one module that builds topics."""
    from firmware.protocol.topics import status_topic as build  # noqa: PLC0415

    return str(build(region, terminal))


def offline_payload(terminal: str) -> bytes:
    """The last will (and the goodbye on a clean stop)."""
    return pad_status(json.dumps({"terminal": terminal, "state": "offline"}).encode())


class StatusPublisher:
    """Publishes the retained status through ``publish(topic, payload, qos, retain)``."""

    def __init__(
        self,
        publish: PublishFn,
        topic: str,
        terminal: str,
        *,
        wall: Callable[[], float] = time.time,
    ):
        self._publish = publish
        self.topic = topic
        self.terminal = terminal
        self._wall = wall

    def payload(self, info: dict[str, Any]) -> bytes:
        body = {
            "terminal": self.terminal,
            "state": "online",
            "t": round(self._wall(), 3),
            "version": __version__,
            **info,
        }
        return pad_status(json.dumps(body, separators=(",", ":")).encode())

    def publish(self, info: dict[str, Any]) -> None:
        self._publish(self.topic, self.payload(info), 1, True)

    def goodbye(self) -> None:
        """The clean-stop status: the same payload as the last will."""
        self._publish(self.topic, offline_payload(self.terminal), 1, True)
