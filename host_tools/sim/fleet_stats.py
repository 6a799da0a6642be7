"""What the fleet simulator records and the figures it reports.

Every scan is a :class:`ScanRecord`: when it was made, what the list says it must get,
each UNKNOWN the officer saw (a TIMEOUT or an ERROR before the answer), and the answer.
:func:`summarise` turns the records and the fault times into the report:

- ``lost``: scans with no answer at the end (after the drain);
- ``wrong``: answers that disagree with the list (expected from the sample files);
- ``p50_ms`` / ``p99_ms`` / ``max_ms``: from the scan to its answer, retries included
  (what the officer waits), over every answered scan; ``p99_outside_ms`` the same over
  scans made outside every fault's window (``[fault - query_timeout, fault + recovery]``);
- ``recovery_s``: per fault, the time until every kiosk whose link dropped after it is
  ready again (subscribed) *and* every scan made from ``query_timeout`` before the fault
  until the later of that reconnection and the restarted part being back (for a broker
  behind bridges: every site's bridge connected again) has its answer; the largest over
  the faults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ANSWERS = ("NO_MATCH", "POSSIBLE_MATCH")


@dataclass
class ScanRecord:
    kiosk: int
    query_id: bytes
    expected: str
    started: float
    answered_at: float | None = None
    outcome: str | None = None
    unknowns: int = 0  # TIMEOUT/ERROR verdicts shown before the answer
    sends: int = 1
    late: bool = False

    @property
    def latency(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.started


@dataclass
class FaultRecord:
    kind: str  # broker, regional, site
    at: float  # monotonic time the fault began
    target: str = ""
    back_at: float | None = None  # when the restarted part was ready again


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def fault_recovery(
    fault: FaultRecord,
    next_fault_at: float,
    scans: Sequence[ScanRecord],
    link_events: Sequence[tuple[float, int, bool]],
    query_timeout: float,
) -> dict[str, float | None]:
    """Recovery of one fault (see the module doc); ``link_events`` are ``(t, kiosk, up)``."""
    down: dict[int, float] = {}
    back: dict[int, float] = {}
    for t, k, up in link_events:
        if t < fault.at or t >= next_fault_at:
            continue
        if not up:
            down.setdefault(k, t)
            back.pop(k, None)
        elif k in down:
            back[k] = t
    unrecovered = [k for k in down if k not in back]
    links_s = None if unrecovered else max((t - fault.at for t in back.values()), default=0.0)
    window_end = max(fault.at + (links_s or 0.0), fault.back_at or fault.at)
    affected = [s for s in scans if fault.at - query_timeout <= s.started <= window_end]
    if any(s.answered_at is None for s in affected):
        scans_s = None
    else:
        scans_s = max(
            (s.answered_at - fault.at for s in affected if s.answered_at is not None),
            default=0.0,
        )
        scans_s = max(scans_s, 0.0)
    recovery = None if links_s is None or scans_s is None else max(links_s, scans_s)
    ups = sorted(t - fault.at for t in back.values())
    return {
        "links_down": float(len(down)),
        "links_s": links_s,
        # how the kiosks' returns spread out (jittered backoff, not a herd): the 10th
        # and 90th percentile of their times back
        "back_p10_s": percentile(ups, 10) if ups else None,
        "back_p90_s": percentile(ups, 90) if ups else None,
        "scans_s": scans_s,
        "recovery_s": recovery,
    }


def summarise(
    scans: Sequence[ScanRecord],
    faults: Sequence[FaultRecord],
    link_events: Sequence[tuple[float, int, bool]],
    query_timeout: float,
) -> dict[str, Any]:
    """The report's counting and timing keys (the caller adds sizes and memory)."""
    answered = [s for s in scans if s.answered_at is not None]
    wrong = [s for s in answered if s.outcome != s.expected]
    lat = [s.latency * 1000.0 for s in answered if s.latency is not None]
    per_fault: list[dict[str, Any]] = []  # figures per fault, rounded for the report
    recoveries: list[float | None] = []
    windows: list[tuple[float, float]] = []
    ordered = sorted(faults, key=lambda f: f.at)
    for i, f in enumerate(ordered):
        nxt = ordered[i + 1].at if i + 1 < len(ordered) else math.inf
        rec = fault_recovery(f, nxt, scans, link_events, query_timeout)
        per_fault.append({"kind": f.kind, "target": f.target, **{
            k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items()}})  # fmt: skip
        recoveries.append(rec["recovery_s"])
        span = rec["recovery_s"] if rec["recovery_s"] is not None else math.inf
        windows.append((f.at - query_timeout, f.at + span))
    outside = [
        s.latency * 1000.0
        for s in answered
        if s.latency is not None and not any(a <= s.started <= b for a, b in windows)
    ]
    recovery = None
    if all(r is not None for r in recoveries):
        recovery = max((r for r in recoveries if r is not None), default=0.0)
    return {
        "scans": len(scans),
        "answered": len(answered),
        "lost": len(scans) - len(answered),
        "wrong": len(wrong),
        "hits": sum(s.expected == "POSSIBLE_MATCH" for s in scans),
        "hits_answered": sum(s.outcome == "POSSIBLE_MATCH" for s in answered),
        "unknown_shown": sum(s.unknowns for s in scans),
        "resends": sum(s.sends - 1 for s in scans),
        "p50_ms": _r(percentile(lat, 50)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(max(lat) if lat else math.nan),
        "p99_outside_ms": _r(percentile(outside, 99)),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "faults": per_fault,
    }


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 1)
