"""The region's health as the regional service already reports it: each process's health
file (``fieldterm regional --health-file``, rewritten every few seconds; see
host_tools/regional/service.py). The console reads the files named by ``--regional-health``
(globs) and derives queries per second from two successive reports of the same process.
A report older than ``stale_after`` seconds marks its process as not reporting.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Callable, Sequence
from typing import Any


class RegionHealth:
    def __init__(
        self,
        patterns: Sequence[str],
        *,
        stale_after: float = 15.0,
        clock: Callable[[], float] = time.time,
    ):
        self.patterns = list(patterns)
        self.stale_after = stale_after
        self._clock = clock
        self._prev: dict[str, tuple[float, int]] = {}  # file -> (t, answered)
        self._qps: dict[str, float] = {}

    def processes(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        files = sorted({f for p in self.patterns for f in glob.glob(p)})
        for f in files:
            try:
                h = json.loads(open(f, encoding="utf-8").read())
            except (OSError, ValueError):
                continue
            if not isinstance(h, dict):
                continue
            t, answered = float(h.get("t") or 0.0), int(h.get("answered") or 0)
            prev = self._prev.get(f)
            if prev is not None and t > prev[0]:
                self._qps[f] = max(0.0, (answered - prev[1]) / (t - prev[0]))
                self._prev[f] = (t, answered)
            elif prev is None:
                self._prev[f] = (t, answered)
            raw = h.get("offline_list")
            lst: dict[str, Any] = raw if isinstance(raw, dict) else {}
            out.append(
                {
                    "file": f,
                    "pid": h.get("pid"),
                    "t": t,
                    "reporting": now - t <= self.stale_after,
                    "ready": bool(h.get("ready")),
                    "connected": bool(h.get("connected")),
                    "answered": answered,
                    "qps": self._qps.get(f),
                    "refusals": dict(h.get("refusals") or {}),
                    "list_version": h.get("list_version"),
                    "published_list": lst.get("version") or lst.get("published_version"),
                    "alerts_queued": h.get("alerts_queued"),
                    "terminals": h.get("terminals"),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        procs = self.processes()
        refusals: dict[str, int] = {}
        for p in procs:
            for k, v in p["refusals"].items():
                refusals[k] = refusals.get(k, 0) + int(v)
        live = [p for p in procs if p["reporting"]]
        versions = sorted({p["list_version"] for p in live if p["list_version"] is not None})
        return {
            "processes": procs,
            "qps": sum(p["qps"] or 0.0 for p in live),
            "refusals": dict(sorted(refusals.items())),
            "list_versions": versions,
        }
