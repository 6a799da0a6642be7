"""Opening the kiosks' telemetry (:mod:`firmware.protocol.telemetry`) for the fleet page.

Each message opens with the desk's X25519 key and must be signed by one of the terminal's
identity keys listed in ``fleet.json`` (``provision console-cert`` writes them). A message
whose ``(boot, seq)`` is not newer than the last one from that kiosk is a replay or a
redelivery and is dropped, so an old "all is well" cannot hide a kiosk that went quiet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from firmware.errors import EnvelopeError
from firmware.protocol import keys
from firmware.protocol import telemetry as wire
from host_tools.console.fleet import Fleet

log = logging.getLogger(__name__)


class TelemetryOpener:
    def __init__(self, desk_key: Any, region: str, fleet: Fleet):
        self._desk = desk_key
        self.region = region
        self.fleet = fleet
        self._last: dict[str, tuple[str, int]] = {}
        self.refused = 0

    def _keys(self, tid: str) -> list[Any]:
        for t in self.fleet.provisioned():
            if t.get("id") == tid:
                if t.get("revoked"):
                    return []
                return [keys.ed25519_public_from_b64(k) for k in t.get("identity_keys") or ()]
        return []

    def __call__(self, tid: str, payload: bytes) -> dict[str, Any] | None:
        try:
            body = wire.open_(self._desk, self.region, tid, payload, self._keys(tid))
        except (EnvelopeError, ValueError) as exc:
            self.refused += 1
            log.warning("telemetry from %s refused (%s)", tid, getattr(exc, "reason", exc))
            return None
        last = self._last.get(tid)
        if last is not None and last[0] == body["boot"] and body["seq"] <= last[1]:
            log.warning("telemetry %d of %s seen before: ignored", body["seq"], tid)
            return None
        self._last[tid] = (str(body["boot"]), int(body["seq"]))
        return {**body["health"], "t": body["t"]}


def opener(alert_key_file: Any, region: str, fleet: Fleet) -> Callable[[str, bytes], Any]:
    return TelemetryOpener(keys.load_x25519_private(alert_key_file), region, fleet)
