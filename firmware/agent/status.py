"""The terminal's retained status message and its last will.

Topic ``ft/v1/<region>/status/<terminal>`` (built by :mod:`firmware.protocol.topics`),
QoS 1, retained. The payload says who and whether it is up, nothing else::

    {"terminal": "kiosk-001", "state": "online"}

and the last will, registered with the broker at connect time, is::

    {"terminal": "kiosk-001", "state": "offline"}

so a monitor sees "offline" when the kiosk vanishes without a goodbye. On a clean stop
the agent publishes the offline payload itself.

The broker reads this message, so it tells the broker nothing it does not already know
from the connection itself: no clock, no version, no counts (documents read, queries
pending), no audit head, no alarms. Those figures move with every scan, so any of them in
a message the broker can read (and keeps, retained) would count the kiosk's scans and
verdicts for it. They travel sealed to the alert desk instead, in the kiosk's telemetry
(:mod:`firmware.agent.telemetry`), which the operator's console opens. The heartbeat
still hands each beat's figures to the port (:class:`~firmware.agent.ports.StatusPort`);
this publisher drops them.

Every payload, the will included, is padded with JSON whitespace to :data:`STATUS_SIZE`
bytes, and the heartbeat publishes on a fixed schedule, never on a screen change
(issue 13): neither the size, the content nor the time of a status message says anything
about a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

PublishFn = Callable[[str, bytes, int, bool], Any]
#: Every status payload is this long (JSON padded with trailing spaces).
STATUS_SIZE = 1024
#: The only keys a status payload has.
STATUS_FIELDS = ("terminal", "state")


def pad_status(raw: bytes) -> bytes:
    """``raw`` JSON padded with spaces to :data:`STATUS_SIZE` (or a multiple of it);
    trailing whitespace is valid JSON, so any reader parses it unchanged."""
    size = max(1, -(-len(raw) // STATUS_SIZE)) * STATUS_SIZE
    return raw + b" " * (size - len(raw))


def status_topic(region: str, terminal: str) -> str:
    """The status topic, from the one module that builds topics."""
    from firmware.protocol.topics import status_topic as build  # noqa: PLC0415

    return str(build(region, terminal))


def _payload(terminal: str, state: str) -> bytes:
    return pad_status(json.dumps({"terminal": terminal, "state": state}).encode())


def offline_payload(terminal: str) -> bytes:
    """The last will (and the goodbye on a clean stop)."""
    return _payload(terminal, "offline")


class StatusPublisher:
    """Publishes the retained status through ``publish(topic, payload, qos, retain)``."""

    def __init__(self, publish: PublishFn, topic: str, terminal: str):
        self._publish = publish
        self.topic = topic
        self.terminal = terminal

    def payload(self, info: dict[str, Any] | None = None) -> bytes:
        """The online status. ``info`` (the heartbeat's figures) is not put in it: see the
        module docstring; the same terminal gets the same bytes at every beat."""
        del info
        return _payload(self.terminal, "online")

    def publish(self, info: dict[str, Any]) -> None:
        self._publish(self.topic, self.payload(info), 1, True)

    def goodbye(self) -> None:
        """The clean-stop status: the same payload as the last will."""
        self._publish(self.topic, offline_payload(self.terminal), 1, True)
