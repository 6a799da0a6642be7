"""``fieldterm sim fleet``: many simulated kiosks against a real local region.

A run builds a :class:`~host_tools.localregion.LocalRegion` (``--terminals`` kiosks
provisioned as a technician does, a synthetic list, Mosquitto with mutual TLS, K
``fieldterm regional`` processes sharing the queries), then drives every kiosk from one
event loop (:mod:`host_tools.sim.fleet_loop`; no thread per kiosk): each kiosk is the
real :class:`~firmware.client.client.QueryClient` with its own certificate, identity key,
session ticket and sealed queries. Scans follow :mod:`host_tools.sim.fleet_traffic`
(Poisson per lane, bursts, hit rate); faults (``--fault broker@20``) restart parts on a
schedule. A progress line goes to stderr; at the end one JSON line to stdout (see
:mod:`host_tools.sim.fleet_stats` for what each figure means).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import heapq
import itertools
import json
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from host_tools.sim.fleet_region import broker_pid, build_region, cpu_s, role_pids, rss_mb
from host_tools.sim.fleet_stats import FaultRecord, ScanRecord, summarise
from host_tools.sim.fleet_traffic import HIT_RATE, DocumentPicker, TrafficModel, scan_schedule

FAULT_KINDS = ("broker", "regional", "site")


class GcPauses:
    """The simulator's own garbage-collector pauses, which land on every latency it
    measures. 10,000 kiosks are millions of long-lived objects (paho clients, TLS sockets,
    query clients); a full collection walked them all and stopped the loop for up to a
    second (0.45-0.98 s measured, collecting nothing), so the run freezes them
    (:func:`gc.freeze`) once the fleet is connected, and reports its longest pause."""

    def __init__(self) -> None:
        self._start = 0.0
        self.max_ms = 0.0
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.count += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


@dataclass(frozen=True)
class Fault:
    """``KIND@SECONDS[:TARGET]``: restart the regional broker, regional process TARGET or
    site broker TARGET (0-based)."""

    kind: str
    at: float
    target: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        kind, sep, rest = text.partition("@")
        when, _, target = rest.partition(":")
        if not sep or kind not in FAULT_KINDS:
            raise ValueError(f"--fault {text!r}: want KIND@SECONDS[:N], KIND one of {FAULT_KINDS}")
        try:
            return cls(kind, float(when), int(target or 0))
        except ValueError:
            raise ValueError(f"--fault {text!r}: SECONDS and N must be numbers") from None


@dataclass(frozen=True)
class FleetOptions:
    terminals: int = 200
    sites: int = 0
    direct: int = 0  # with sites: this many kiosks bypass their site broker (mixed)
    regionals: int = 1
    rate: float = 50.0
    duration: float = 30.0
    hit_rate: float = HIT_RATE
    faults: tuple[Fault, ...] = ()
    seed: int = 1
    records: int = 5000
    sample_size: int = 500
    retry_interval: float = 10.0
    drain: float = 60.0
    workdir: Path | None = None
    keep: bool = False
    traffic: dict[str, Any] = field(default_factory=dict)


class _Driver(threading.Thread):
    """The loop thread: scans due, timeouts due, one loop turn; repeat until stopped."""

    def __init__(self, loop: Any, kiosks: list[Any], picker: DocumentPicker, rng: random.Random):
        super().__init__(name="fleet-loop", daemon=True)
        self.loop, self.kiosks, self.picker, self.rng = loop, kiosks, picker, rng
        self.stop = threading.Event()
        self.schedule: Sequence[tuple[float, int]] = ()
        self.t0 = 0.0
        self.fed = 0
        self._deadlines: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    def deadline(self, t: float, kiosk: Any) -> None:
        heapq.heappush(self._deadlines, (t, next(self._seq), kiosk))

    def call(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def feed(self, schedule: Sequence[tuple[float, int]], t0: float) -> None:
        def go() -> None:
            self.schedule, self.t0, self.fed = schedule, t0, 0

        self.call(go)

    def run(self) -> None:
        self.loop.thread_id = threading.get_ident()
        while not self.stop.is_set():
            now = time.monotonic()
            sched = self.schedule
            while self.fed < len(sched) and self.t0 + sched[self.fed][0] <= now:
                self.kiosks[sched[self.fed][1]].scan(self.picker.pick(self.rng))
                self.fed += 1
            while self._deadlines and self._deadlines[0][0] <= now:
                heapq.heappop(self._deadlines)[2].sweep()
            wait = 0.01
            if self.fed < len(sched):
                wait = min(wait, self.t0 + sched[self.fed][0] - now)
            if self._deadlines:
                wait = min(wait, self._deadlines[0][0] - now)
            self.loop.run_once(max(0.0, wait))


def run_fleet(opts: FleetOptions, err: IO[str] = sys.stderr) -> dict[str, Any]:
    """One whole run; returns the report (see the module doc)."""
    from firmware.client.config import ClientConfig  # noqa: PLC0415
    from host_tools.sim.fleet_kiosk import SimKiosk  # noqa: PLC0415
    from host_tools.sim.fleet_loop import FleetLoop  # noqa: PLC0415

    began = time.monotonic()

    def say(text: str) -> None:
        print(
            f"fieldterm sim fleet: [{time.monotonic() - began:5.1f}s] {text}", file=err, flush=True
        )

    rng = random.Random(opts.seed)
    own = opts.workdir is None
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="fieldterm-fleet-", dir="/tmp"))
    with contextlib.ExitStack() as stack:
        if own and not opts.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        region = build_region(
            workdir, opts.terminals, sites=opts.sites, regionals=opts.regionals,
            records=opts.records, sample_size=opts.sample_size, seed=opts.seed, say=say,
        )  # fmt: skip
        stack.callback(region.close)
        region.start()
        say(
            f"regional broker, {opts.sites} bridged site broker(s) and {opts.regionals} "
            "regional process(es) ready"
        )
        picker = DocumentPicker(region.listed, region.unlisted, opts.hit_rate)
        loop = FleetLoop(rng=random.Random(opts.seed + 1))
        scans: list[ScanRecord] = []
        link_events: list[tuple[float, int, bool]] = []
        kiosks: list[Any] = []
        driver = _Driver(loop, kiosks, picker, random.Random(opts.seed + 2))
        for i, tid in enumerate(region.terminals):
            cfg = ClientConfig.load(region.terminal_toml(tid))
            if opts.sites and i < opts.direct:  # mixed: this kiosk talks to the region
                cfg = dataclasses.replace(
                    cfg, broker=dataclasses.replace(cfg.broker, port=region.port)
                )
            kiosks.append(SimKiosk(
                i, cfg, loop, scans=scans, link_events=link_events,
                on_deadline=driver.deadline, retry_interval=opts.retry_interval,
            ))  # fmt: skip
        stack.callback(loop.close)
        stack.callback(driver.join, 10.0)
        stack.callback(driver.stop.set)
        t_connect = time.monotonic()

        def start_all() -> None:
            for k in kiosks:
                k.start()

        driver.call(start_all)
        driver.start()
        peak = {"broker": 0.0, "sim": 0.0}

        cpu: dict[str, dict[int, float]] = {"broker": {}, "sites": {}, "regionals": {}}

        def sample_cpu() -> None:
            for role, pids in role_pids(region).items():
                for pid in pids:
                    cpu[role][pid] = cpu_s(pid)

        def tick(phase: str, t0: float) -> None:
            sample_cpu()
            peak["broker"] = max(peak["broker"], rss_mb(broker_pid(region)))
            peak["sim"] = max(peak["sim"], rss_mb())
            up = sum(k.ready() for k in kiosks)
            answered = sum(s.answered_at is not None for s in scans)
            unknown = sum(s.unknowns for s in scans)
            print(
                f"\r[{phase} {time.monotonic() - t0:6.1f}s] kiosks up {up}/{len(kiosks)}  "
                f"scans {len(scans)}  answered {answered}  unknown shown {unknown}  "
                f"broker {peak['broker']:.0f} MB",
                end="" if err.isatty() else "\n", file=err, flush=True,
            )  # fmt: skip

        connect_limit = 60.0 + opts.terminals / 50.0
        while not all(k.ready() for k in kiosks):
            if time.monotonic() - t_connect > connect_limit:
                raise RuntimeError(
                    f"only {sum(k.ready() for k in kiosks)}/{len(kiosks)} kiosks connected "
                    f"after {connect_limit:.0f} s"
                )
            tick("connect", t_connect)
            time.sleep(1.0)
        connect_s = time.monotonic() - t_connect
        say(f"{len(kiosks)} kiosks connected and subscribed in {connect_s:.1f} s")
        # the fleet's objects live as long as the run: out of the collector's way (GcPauses)
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        pauses = stack.enter_context(GcPauses())
        model = TrafficModel(rate=opts.rate, **opts.traffic)
        schedule = scan_schedule(model, len(kiosks), opts.duration, rng)
        sample_cpu()
        cpu_before = {role: dict(v) for role, v in cpu.items()}
        sim_before = _self_cpu_s()
        t0 = time.monotonic()
        driver.feed(schedule, t0)
        fault_records = []
        pending = sorted(opts.faults, key=lambda f: f.at)
        next_tick = t0
        while time.monotonic() < t0 + opts.duration:
            if pending and time.monotonic() >= t0 + pending[0].at:
                fault_records.append(_inject(region, pending.pop(0), say))
                continue
            if time.monotonic() >= next_tick:
                tick("run", t0)
                next_tick += 1.0
            upcoming = [t0 + opts.duration, next_tick] + ([t0 + pending[0].at] if pending else [])
            time.sleep(max(0.0, min(upcoming) - time.monotonic()))
        t_end = time.monotonic()
        while time.monotonic() < t_end + opts.drain:
            if driver.fed >= len(schedule) and all(
                k.ready() and not k.unanswered() for k in kiosks
            ):
                break  # every scan answered and every kiosk's link back
            tick("drain", t0)
            time.sleep(0.5)
        drained_s = time.monotonic() - t_end
        tick("done", t0)
        if err.isatty():
            print(file=err)
        driver.stop.set()
        driver.join(10.0)
        sample_cpu()
        used = {
            role: sum(t - cpu_before[role].get(pid, 0.0) for pid, t in cpu[role].items())
            for role in cpu
        }
        used["sim"] = _self_cpu_s() - sim_before
        report = summarise(scans, fault_records, link_events, kiosks[0].timeout)
        run_s = t_end - t0
        return {
            "terminals": len(kiosks),
            "sites": opts.sites,
            "regionals": opts.regionals,
            **report,
            "broker_rss_mb": round(peak["broker"], 1),
            "sim_rss_mb": round(max(peak["sim"], _maxrss_mb()), 1),
            "offered_per_s": round(len(schedule) / opts.duration, 1),
            "answered_per_s": round(
                sum(s.answered_at is not None and s.answered_at <= t_end for s in scans) / run_s, 1
            ),
            "connect_s": round(connect_s, 1),
            "drain_s": round(drained_s, 1),
            "connect_failures": loop.connect_failures,
            # the simulator's longest garbage-collector pause during the traffic: it is
            # in the latencies above (a kiosk has one client, not 10,000)
            "sim_gc_max_ms": round(pauses.max_ms, 1),
            # CPU seconds per part from the start of the traffic to the end of the drain,
            # and per scan (restarts, reconnects and resends included)
            "cpu_s": {k: round(v, 1) for k, v in used.items()},
            "cpu_us_per_scan": {k: round(v * 1e6 / max(1, len(scans))) for k, v in used.items()},
            "traffic_s": round(time.monotonic() - t0, 1),
            "topology": _topology(opts),
            "direct_kiosks": opts.direct if opts.sites else len(kiosks),
        }


def _inject(region: Any, fault: Fault, say: Callable[[str], None]) -> FaultRecord:
    """Restart one part; returns once it (and any bridge through it) is back."""
    at = time.monotonic()
    if fault.kind == "broker":
        rec = FaultRecord("broker", at, "regional broker")
        mark = region.bridge_mark()
        region.broker.stop()
        region.broker.start(timeout=60.0)
        if region.sites:
            region.wait_bridges(mark=mark, timeout=120.0)
    elif fault.kind == "site":
        site = region.sites[fault.target]
        rec = FaultRecord("site", at, site)
        region.site_brokers[site].stop()
        region.start_site(site)  # waits for its bridge
    else:
        old = region.regionals[fault.target]
        rec = FaultRecord("regional", at, f"regional {fault.target}")
        old.stop()
        new = region.start_regional()
        region.regionals.remove(new)
        region.regionals[fault.target] = new
    rec.back_at = time.monotonic()
    say(f"fault: restarted {rec.target}; back after {rec.back_at - at:.1f} s")
    return rec


def _topology(opts: FleetOptions) -> str:
    if not opts.sites:
        return "direct"
    return "mixed" if opts.direct else "bridged"


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_report(report: dict[str, Any], out: IO[str] = sys.stdout) -> None:
    out.write(json.dumps(report, sort_keys=False) + "\n")
    out.flush()
