"""Sealed, looked-up, audited queries against two plaintext echoes, in interleaved passes.

Three systems answer over one Mosquitto (mTLS, QoS 1), driven by the same load generator
(:mod:`host_tools.bench.loadgen`): simulated terminals, each with a window of outstanding
queries, for a fixed time (throughput and latency under load), then one query at a time
(serial round trips). They differ only in what answers:

- ``echo_v5``: a naive paho v5 echo, id in ``CorrelationData``, reply to ``ResponseTopic``;
- ``echo_min``: a minimal echo, id in the payload, no v5 properties, the product's own MQTT
  link on the terminal side (:mod:`host_tools.bench.echo`): the stronger baseline;
- ``sealed``: a ``fieldterm regional`` process with a synthetic SLTD list of ``--records``
  documents, queried by real sealed query clients (:mod:`host_tools.bench.sealed`).

The broker, both echo responders and the regional process start once and keep running;
after one warm-up each, the systems take turns, ``--passes`` times (echo_v5, echo_min,
sealed, echo_v5, ...), so a change of load on a shared machine falls on all of them.

Every query is accounted for. ``lost``: sent and never answered; ``wrong``: an answer that
disagrees with the list; ``refused``: the regional's own refusal count (its health file);
``audited``: rows of answered queries in the regional's audit trail, which must equal the
sealed answers the terminals received. If any of these is off, the ratios are withheld
(``"ratios": null``), ``failures`` says why, and ``fieldterm bench`` exits 1.

``--fault wrong-key`` proves that path: in the first sealed pass one terminal seals its
queries to a key that is not the regional's, so the regional refuses them.
"""

from __future__ import annotations

import argparse
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.errors import SetupError
from firmware.transport.mqtt import BrokerConfig
from host_tools.bench import echo, sealed
from host_tools.bench.accounting import account, audit_rows, audited_when
from host_tools.bench.loadgen import LoadResult, Submitter, Tally, WindowedLoad, pooled
from host_tools.bench.region import RunningRegion, bench_region
from host_tools.bench.regional_report import figures, format_text, ratios
from host_tools.proc import stop_process

SYSTEMS = ("echo_v5", "echo_min", "sealed")
FAULTS = ("wrong-key",)
#: Sizes of a default run and of ``--quick``; a size given on the command line wins.
SIZES = {
    "records": (1_000_000, 5_000),
    "passes": (3, 2),
    "duration": (4.0, 1.0),
    "serial": (1000, 200),
    "timeout": (10.0, 5.0),
}

__all__ = ["add_arguments", "format_text", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, help="SLTD records (1 M; --quick 5000)")
    p.add_argument("--terminals", type=int, default=4, help="simulated terminals (4)")
    p.add_argument(
        "--window", type=int, default=200, help="outstanding queries in all, split over terminals"
    )
    p.add_argument("--passes", type=int, help="interleaved passes per system (3; --quick 2)")
    p.add_argument("--duration", type=float, help="seconds under load per pass (4; --quick 1)")
    p.add_argument("--serial", type=int, help="one-at-a-time queries per pass (1000; --quick 200)")
    p.add_argument("--timeout", type=float, help="query timeout, seconds (10; --quick 5)")
    p.add_argument("--hit-every", type=int, default=1000, help="1 query in N is listed (1000)")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, in pass order (default {','.join(SYSTEMS)})",
    )
    p.add_argument(
        "--fault",
        choices=FAULTS,
        help="wrong-key: in the first sealed pass one terminal seals to a key that is not "
        "the regional's; the regional refuses those queries, so the run must exit 1",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="5000 records, 2 passes of 1 s + 200 serial queries, 5 s timeout (smoke run, CI)",
    )
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")


@dataclass
class System:
    """One thing that answers: its terminals (submitters) and the tally of all it was sent."""

    name: str
    submitters: list[Submitter]
    tally: Tally
    faulty: Callable[[], AbstractContextManager[list[Submitter]]] | None = None  # --fault
    loaded: list[LoadResult] = field(default_factory=list)
    serial: list[LoadResult] = field(default_factory=list)


def _systems(args: argparse.Namespace) -> tuple[str, ...]:
    names = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    bad = [n for n in names if n not in SYSTEMS]
    if bad or not names or len(set(names)) != len(names):
        raise SetupError(f"--systems: {bad or names} is not a list of distinct {SYSTEMS}")
    if args.fault and "sealed" not in names:
        raise SetupError("--fault needs the sealed system in --systems")
    return names


def _start_responder(stack: ExitStack, mode: str, broker: BrokerConfig, log: Path) -> None:
    """An echo responder process, returned once it printed ``ready`` (its SUBACK)."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            echo.responder_argv(mode, broker), stdout=subprocess.PIPE, stderr=err, text=True
        )
    stack.callback(stop_process, proc, 10)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=30.0) or proc.stdout.readline().strip() != "ready":
            raise SetupError(f"echo responder {mode} did not become ready; see {log}")


def _sealed_system(stack: ExitStack, region: RunningRegion, args: argparse.Namespace) -> System:
    """A sealed query client per terminal (closed by ``stack``)."""
    picker = sealed.DocumentPicker(region.listed, region.unlisted, args.hit_every)
    tally = sealed.SealedTally()
    terms = []
    for tid in region.terminals:
        t = sealed.open_terminal(region.terminal_config(tid), picker, tally, args.timeout)
        stack.callback(t.close)
        terms.append(t)
    system = System("sealed", [t.submit for t in terms], tally)
    if args.fault == "wrong-key":
        system.faulty = _wrong_key_pass(region, system, picker, tally, args.timeout)
    return system


def _echo_system(stack: ExitStack, region: RunningRegion, name: str) -> System:
    """An echo responder process and a requester per terminal (stopped by ``stack``)."""
    mode = name.removeprefix("echo_")
    _start_responder(stack, mode, region.responder_broker, region.dir / f"{name}.log")
    cls = echo.EchoClient if mode == "v5" else echo.MinimalEchoClient
    tally = Tally()
    subs = []
    for tid in region.terminals:
        # the terminal's identity (the broker's ACL user) with a client id of its own:
        # the terminal's client id is the sealed client's
        c = cls(f"{tid}-{name}", tid, region.terminal_broker(tid))
        stack.callback(c.close)
        subs.append(tally.counted(c.submit))
    return System(name, subs, tally)


def _wrong_key_pass(
    region: RunningRegion,
    system: System,
    picker: sealed.DocumentPicker,
    tally: sealed.SealedTally,
    timeout: float,
) -> Callable[[], AbstractContextManager[list[Submitter]]]:
    """The submitters of the faulty pass: the last terminal replaced, for that pass only
    (its wrong-key twin shares the terminal's response topic), by one sealing to a key
    that is not the regional's."""
    tid = region.terminals[-1]

    @contextmanager
    def faulty() -> Iterator[list[Submitter]]:
        bad = sealed.wrong_key_terminal(
            region.terminal_config(tid), region.dir / "fault", picker, tally, timeout
        )
        try:
            yield [*system.submitters[:-1], bad.submit]
        finally:
            bad.close()

    return faulty


def _pass(system: System, subs: list[Submitter], args: argparse.Namespace) -> None:
    grace = args.timeout + 2.0  # room for a query's TIMEOUT after the run's end
    per = max(1, args.window // len(subs))
    system.loaded.append(WindowedLoad(subs, window=per, duration=args.duration, grace=grace).run())
    system.serial.append(WindowedLoad(subs[:1], window=1, total=args.serial, grace=grace).run())


def _warm_up(system: System, args: argparse.Namespace) -> None:
    grace = args.timeout + 2.0
    per = max(1, args.window // len(system.submitters))
    WindowedLoad(system.submitters, window=per, total=4 * args.window, grace=grace).run()
    WindowedLoad(system.submitters[:1], window=1, total=min(100, args.serial), grace=grace).run()


def _interleave(
    systems: dict[str, System], region: RunningRegion, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Warm every system up, then ``args.passes`` rounds of one pass each, in order;
    returns every pass's figures and accounting."""
    for s in systems.values():
        _warm_up(s, args)

    def answered() -> int:
        return systems["sealed"].tally.answered if "sealed" in systems else 0

    audit_before = audited_when(region.audit_db, answered)
    per_pass: list[dict[str, Any]] = []
    for n in range(1, args.passes + 1):
        for s in systems.values():
            before = s.tally.snapshot()
            faulty = s.faulty if n == 1 else None
            if faulty is not None:
                with faulty() as subs:
                    _pass(s, subs, args)
            else:
                _pass(s, s.submitters, args)
            after = s.tally.snapshot()
            row: dict[str, Any] = {"pass": n, "system": s.name}
            row.update(figures(s.loaded[-1], s.serial[-1]))
            row["sent"] = after["sent"] - before["sent"]
            row["lost"] = row["sent"] - (after["answered"] - before["answered"])
            row["wrong"] = after["wrong"] - before["wrong"]
            if s.name == "sealed":
                audit = audited_when(region.audit_db, answered)
                row["audited"] = audit[0] - audit_before[0]
                row["refused"] = audit[1] - audit_before[1]
                row["fault"] = args.fault if faulty is not None else None
                audit_before = audit
            per_pass.append(row)
    return per_pass


@contextmanager
def _workdir(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir:
        work = Path(args.workdir)
        shutil.rmtree(work / "region", ignore_errors=True)  # a fresh region every run
        yield work
        return
    tmp = tempfile.mkdtemp(prefix="fieldterm-bench-regional-")
    Path(tmp).chmod(0o711)  # Mosquitto runs as user 'mosquitto', which must traverse it
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    for key, (default, quick) in SIZES.items():
        if getattr(args, key, None) is None:
            setattr(args, key, quick if args.quick else default)
    names = _systems(args)
    res: dict[str, Any] = {
        "records": args.records,
        "terminals": args.terminals,
        "window": args.window,
        "passes": args.passes,
        "order": list(names),
        "duration_s": args.duration,
        "serial_queries": args.serial,
        "timeout_s": args.timeout,
        "hit_every": args.hit_every,
        "fault": args.fault,
        "qos": 1,
        "tls": "mTLS",
    }
    with (
        _workdir(args) as work,
        bench_region(work / "region", terminals=args.terminals, records=args.records) as region,
    ):
        res.update(region.info)
        t0 = time.perf_counter()
        with ExitStack() as stack:
            systems = {
                n: _sealed_system(stack, region, args)
                if n == "sealed"
                else _echo_system(stack, region, n)
                for n in names
            }
            per_pass = _interleave(systems, region, args)
        res["run_s"] = time.perf_counter() - t0
        health = region.stop_regional()  # it flushes its audit trail and health on the way
        audit = audit_rows(region.audit_db) if "sealed" in systems else None
    res["systems"] = {
        s.name: {**figures(pooled(s.loaded), pooled(s.serial)), **s.tally.snapshot()}
        for s in systems.values()
    }
    res.update(account({s.name: s.tally for s in systems.values()}, health, audit))
    res["ratios"] = ratios(res["systems"], per_pass) if res["valid"] else None
    res["per_pass"] = per_pass
    return res
