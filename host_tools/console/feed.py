"""What the console hears from the broker, with the desk's TLS identity:

- ``ft/v1/<region>/alert``: the sealed, fixed-rate alert batches, opened and verified by
  :class:`host_tools.regional.desk.Desk` (its checks for refused, duplicate and missing
  batches), each verified alert stored as a hit;
- ``ft/v1/<region>/status/+``: each kiosk's retained status and last will (online or
  offline, nothing more; the broker's ACL lets the console's identity read them, see
  ``provision broker-config``), for the fleet page;
- ``ft/v1/<region>/telemetry/+``: each kiosk's health sealed to the desk
  (:mod:`firmware.protocol.telemetry`), opened and verified by
  :mod:`host_tools.console.telemetry_open`: every figure of the fleet page.

A hit is *late* when the regional service said so inside the signed, sealed alert
(``late``: the query came as a resend, so the officer had already been shown an offline
answer or UNKNOWN for that scan; see :func:`host_tools.regional.alert_batcher.hit_alert`).

Every change calls ``notify()`` so the pages' event streams push it at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from host_tools.console.fleet import Fleet
from host_tools.console.hits import HitStore
from host_tools.regional.desk import Desk, DeskConfig

log = logging.getLogger(__name__)


class _HitSink:
    """The text stream :class:`Desk` writes verified alerts to (``--json`` lines)."""

    def __init__(self, on_alert: Callable[[dict[str, Any]], None]):
        self._on_alert = on_alert

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self._on_alert(json.loads(line))
        return len(text)

    def flush(self) -> None:
        pass


class Feed:
    def __init__(
        self,
        cfg: DeskConfig,
        hits: HitStore,
        fleet: Fleet,
        notify: Callable[[str], None],
        *,
        telemetry: Callable[[str, bytes], dict[str, Any] | None] | None = None,
    ):
        self.cfg = cfg
        self.hits = hits
        self.fleet = fleet
        self.notify = notify
        self.desk = Desk(cfg, _HitSink(self._alert), as_json=True)  # type: ignore[arg-type]
        self._telemetry = telemetry
        self.status_prefix = f"ft/v1/{cfg.region}/status/"
        self.telemetry_prefix = f"ft/v1/{cfg.region}/telemetry/"

    def _alert(self, body: dict[str, Any]) -> None:
        tid = str(body["terminal"])
        late = body.get("late") is True  # signed by the regional, inside the sealed batch
        hit = self.hits.add(body, site=self.fleet.site_of(tid), late=late)
        if hit is not None:
            log.warning("hit %d at %s (query %s)", hit.id, tid, hit.query_id)
            self.notify("hits")

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic.startswith(self.status_prefix):
            self._status(topic[len(self.status_prefix) :], payload)
        elif topic.startswith(self.telemetry_prefix) and self._telemetry is not None:
            tid = topic[len(self.telemetry_prefix) :]
            doc = self._telemetry(tid, payload)
            if doc is not None:
                self.fleet.on_status(tid, doc, source="telemetry")
                self.notify("fleet")
        else:
            self.desk.on_message(topic, payload)

    def _status(self, tid: str, payload: bytes) -> None:
        if tid == "regional" or not payload:
            return
        try:
            doc = json.loads(payload)
        except ValueError:
            log.warning("status of %s is not JSON: ignored", tid)
            return
        if not isinstance(doc, dict) or doc.get("terminal") not in (None, tid):
            log.warning("status on %s names another terminal: ignored", tid)
            return
        self.fleet.on_status(tid, doc)
        self.notify("fleet")
