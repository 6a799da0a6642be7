"""One simulated kiosk: the real query client on a :class:`LoopLink`, and the agent's
"nothing is lost" rule.

Each :class:`SimKiosk` loads its own ``terminal.toml`` (its certificate, identity key and
the regional's keys), so its session ticket and every sealed query are made by
:class:`~firmware.client.client.QueryClient` exactly as on a kiosk. What the agent adds on
top is modelled here: a scan that got an UNKNOWN (TIMEOUT or ERROR) stays pending and is
sent again with the same query id, at once when the link comes back (SUBACK), and while
the link is up in resend rounds 1, 2, 4, 8 ... s apart, at most ``retry_interval``
(issue 14: after a broker restart the regional may resubscribe after the kiosk), until
the regional answers it. A late answer (after its timeout) resolves the scan as it does
on the kiosk.

All methods run on the fleet loop's thread.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from host_tools.sim.fleet_loop import FleetLoop, LoopLink
from host_tools.sim.fleet_stats import ANSWERS, ScanRecord
from host_tools.sim.fleet_traffic import Document


class SimKiosk:
    """A kiosk of the fleet; ``on_deadline(t, kiosk)`` asks the fleet to sweep it at ``t``."""

    def __init__(
        self,
        index: int,
        cfg: ClientConfig,
        loop: FleetLoop,
        *,
        scans: list[ScanRecord],
        link_events: list[tuple[float, int, bool]],
        on_deadline: Callable[[float, SimKiosk], None],
        retry_interval: float = 10.0,
    ):
        self.index = index
        self.loop = loop
        self.retry_interval = retry_interval
        self._scans = scans
        self._link_events = link_events
        self._on_deadline = on_deadline
        self._waiting: dict[bytes, tuple[ScanRecord, Any]] = {}  # UNKNOWN, to send again
        self._open: dict[bytes, tuple[ScanRecord, Any]] = {}  # sent, no verdict yet
        self.qc = QueryClient(
            cfg,
            link_factory=functools.partial(LoopLink, loop=loop),
            on_link=self._on_link,
        )
        self.timeout = cfg.query_timeout

    @property
    def link(self) -> LoopLink:
        link = self.qc.link
        assert isinstance(link, LoopLink)
        return link

    def start(self) -> SimKiosk:
        self.qc.start(sweeper=False)
        return self

    def ready(self) -> bool:
        return self.qc.connected()

    def unanswered(self) -> int:
        return len(self._waiting) + len(self._open)

    # -- scans -----------------------------------------------------------------------------
    def scan(self, doc: Document) -> ScanRecord:
        rec = ScanRecord(self.index, os.urandom(16), doc.expected, time.monotonic())
        self._scans.append(rec)
        self._send(rec, doc.dk)
        return rec

    def _send(self, rec: ScanRecord, dk: Any) -> None:
        self._open[rec.query_id] = (rec, dk)
        self.qc.submit(rec.query_id, dk, functools.partial(self._verdict, rec), self.timeout)
        self._on_deadline(time.monotonic() + self.timeout + 0.001, self)

    def _verdict(self, rec: ScanRecord, v: Verdict) -> None:
        if rec.answered_at is not None:
            return  # a second copy's answer: the scan is settled already
        entry = self._open.pop(rec.query_id, None) or self._waiting.pop(rec.query_id, None)
        if v.outcome in ANSWERS:
            rec.answered_at, rec.outcome, rec.late = time.monotonic(), v.outcome, v.late
            self._waiting.pop(rec.query_id, None)
            return
        rec.unknowns += 1  # the officer sees UNKNOWN; the agent keeps the scan
        if entry is not None:
            self._waiting[rec.query_id] = entry
            if self.ready():
                gap = min(self.retry_interval, 2.0 ** (rec.unknowns - 1))
                self.loop.call_later(gap, functools.partial(self._retry, rec))

    def _retry(self, rec: ScanRecord) -> None:
        entry = self._waiting.get(rec.query_id)
        if entry is None or not self.ready():
            return  # answered meanwhile, or the link's return will send it
        del self._waiting[rec.query_id]
        rec.sends += 1
        self._send(rec, entry[1])

    def _on_link(self, up: bool) -> None:
        self._link_events.append((time.monotonic(), self.index, up))
        if up:
            for qid in list(self._waiting):
                rec, dk = self._waiting.pop(qid)
                rec.sends += 1
                self._send(rec, dk)

    def sweep(self) -> None:
        self.qc.sweep()

    def close(self) -> None:
        self.qc.link.close()
