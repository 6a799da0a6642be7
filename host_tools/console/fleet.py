"""What the console knows of each terminal: the provisioned list (``fleet.json`` from
``provision console-cert``) and what each kiosk last reported.

Two sources:

- the kiosk's retained status (``ft/v1/<region>/status/<terminal>``,
  :mod:`firmware.agent.status`): ``{terminal, state}`` and nothing else, so the broker
  that reads it learns no more than the connection tells it; with its last will
  ``{"state": "offline"}``, which the broker publishes as soon as the kiosk's connection
  drops (a killed process, a cut cable once the keepalive runs out);
- the kiosk's sealed telemetry (:mod:`firmware.agent.telemetry`, opened by
  :mod:`host_tools.console.telemetry_open`): every figure the page shows (outbox depth,
  documents, audit head, offline list, scanner, clock, alarms).

A kiosk is *online* while its last report says so and is younger than ``offline_after``
seconds (a status) or :data:`TELEMETRY_SILENCE_S` (telemetry). A status keeps the
figures of the last telemetry: it has none of its own.

Each row carries ``problems``: the words the fleet page highlights (offline, revoked,
certificate expiring, list stale or missing, clock off, scanner disconnected, outbox
filling).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TOLERANCE_S = 30.0
OUTBOX_WARN = 5
CERT_WARN_DAYS = 30.0
#: A kiosk that sends telemetry (every 2 s) and is silent this long is offline, even before
#: the broker notices its connection is gone and publishes its last will.
TELEMETRY_SILENCE_S = 8.0


@dataclass
class Report:
    state: str  # "online" | "offline"
    received: float  # wall clock of the console
    t: float | None = None  # the kiosk's own clock
    info: dict[str, Any] = field(default_factory=dict)
    source: str = "status"


def _iso_to_epoch(text: str | None) -> float | None:
    if not text:
        return None
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Fleet:
    def __init__(
        self,
        fleet_file: Path,
        *,
        offline_after: float = 150.0,
        clock: Callable[[], float] = time.time,
    ):
        self.fleet_file = Path(fleet_file)
        self.offline_after = offline_after
        self._clock = clock
        self._lock = threading.Lock()
        self._reports: dict[str, Report] = {}
        self._offline_since: dict[str, float] = {}
        self._stamp: tuple[int, int] | None = None
        self._provisioned: list[dict[str, Any]] = []
        #: Reports before this wall-clock time are the broker's retained copies (sent on
        #: subscribing), marked ``retained`` on the page: they say the kiosk's connection
        #: is up (else the broker would hold its will), not when it last reported.
        self.live_since: float | None = None

    # -- inputs --------------------------------------------------------------------------
    def provisioned(self) -> list[dict[str, Any]]:
        try:
            st = self.fleet_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return []
        if stamp != self._stamp:
            try:
                doc = json.loads(self.fleet_file.read_text())
                self._provisioned = list(doc.get("terminals", []))
            except (OSError, ValueError):
                return self._provisioned
            self._stamp = stamp
        return self._provisioned

    def site_of(self, tid: str) -> str | None:
        for t in self.provisioned():
            if t.get("id") == tid:
                return t.get("site")
        return None

    def on_status(self, tid: str, doc: dict[str, Any], source: str = "status") -> bool:
        """A status (or, ``source="telemetry"``, an opened telemetry) report; whether the
        terminal's online state changed."""
        now = self._clock()
        state = "online" if doc.get("state") == "online" else "offline"
        t = doc.get("t") if source == "telemetry" else None  # a status has no clock
        t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None
        if source == "status" and (self.live_since is None or now < self.live_since):
            source = "retained"  # the broker's retained copy, sent on subscribing
        with self._lock:
            old = self._reports.get(tid)
            was = self._online(old, now)
            if source == "telemetry":
                info = {k: v for k, v in doc.items() if k not in ("terminal", "state", "t")}
            else:  # a status or the will carries no figures: keep the telemetry's
                info = old.info if old is not None else {}
            if (
                source == "status"
                and state == "online"
                and old is not None
                and old.source == "telemetry"
                and self._online(old, now)
            ):
                return False  # the sealed telemetry is newer and says more
            seen = now
            if state == "offline" and old is not None:
                seen = old.received  # last seen: its last report, not the broker's will
            self._reports[tid] = Report(state, seen, t, info, source)
            if state == "offline":
                self._offline_since.setdefault(tid, now)
            else:
                self._offline_since.pop(tid, None)
            return was != (state == "online")

    def _online(self, r: Report | None, now: float) -> bool:
        if r is None or r.state != "online":
            return False
        limit = TELEMETRY_SILENCE_S if r.source == "telemetry" else self.offline_after
        return now - r.received < limit

    # -- the page's rows -----------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        with self._lock:
            reports = dict(self._reports)
        known = {t["id"]: t for t in self.provisioned() if "id" in t}
        for tid in sorted(set(known) | set(reports)):
            out.append(self._row(tid, known.get(tid), reports.get(tid), now))
        return out

    def _row(
        self, tid: str, prov: dict[str, Any] | None, r: Report | None, now: float
    ) -> dict[str, Any]:
        online = self._online(r, now)
        info = r.info if r is not None else {}
        raw = info.get("offline_list")
        lst: dict[str, Any] = raw if isinstance(raw, dict) else {}
        offset = None
        if r is not None and r.t is not None and r.source == "telemetry" and r.state == "online":
            offset = r.t - r.received
        cert_after = _iso_to_epoch(prov.get("cert_not_after")) if prov else None
        scanner = info.get("scanner")
        problems = []
        if prov is None:
            problems.append("unprovisioned")
        elif prov.get("revoked"):
            problems.append("revoked")
        if not online:
            problems.append("offline")
        if cert_after is not None and cert_after - now < CERT_WARN_DAYS * 86400:
            problems.append("cert_expiring" if cert_after > now else "cert_expired")
        if r is not None and (not lst or lst.get("list_version") is None):
            problems.append("no_list")
        elif lst.get("stale"):
            problems.append("list_stale")
        if offset is not None and abs(offset) > CLOCK_TOLERANCE_S:
            problems.append("clock")
        if scanner is False:
            problems.append("scanner")
        pending = info.get("pending")
        if isinstance(pending, int) and pending >= OUTBOX_WARN:
            problems.append("outbox")
        return {
            "id": tid,
            "site": (prov or {}).get("site"),
            "online": online,
            "last_seen": r.received if r is not None else None,
            "list_version": lst.get("list_version"),
            "list_age_s": lst.get("list_age_s"),
            "clock_offset_s": offset,
            "scanner": scanner,
            "pending": pending,
            "cert_not_after": cert_after,
            "revoked": bool((prov or {}).get("revoked")),
            "source": r.source if r is not None else None,
            "problems": problems,
        }
