"""``fieldterm chaos``: faults against a running local region, with the promises checked.

One local region (a real Mosquitto with mTLS, the real regional service, a real kiosk agent
reading a pty scanner simulator) runs while an officer simulator scans listed and unlisted
documents and acknowledges every possible match. Each scenario injects its fault N times,
at an instant drawn from a printed seed, while scans flow; when the fault is healed, the
run waits (bounded) for the kiosk to settle and then checks, from the agent's events file
and the regional's audit trail:

- **lost**: a scan the kiosk accepted (its ``document`` event, or a pending scan it
  reported at restart) that never got a final online verdict;
- **wrong**: a final verdict that disagrees with the list. The expected outcome comes
  from the region's listed and unlisted samples (independent data): the verdict's query
  id leads to the document's keyed hash in the regional's audit, the hash to the sample;
- **clear without a no-match**: a CLEAR (or "cleared online") screen shown for a query whose
  final verdict is not NO_MATCH, or that came from anything but a verdict -- a timeout or
  an error shown as clear;
- **unverified**: a verdict whose query id has no audit row 10 s after the run settled
  (so it cannot be checked). Not a violation of the kiosk's promises, but reported: it
  means the regional answered and lost its audit row.

The agent sits behind :class:`~host_tools.chaos.link.KioskLink` (its own network
namespace, a user-space link to the broker) when namespaces can be made here, so the
network scenarios act on its real TCP connection. Everything is driven from one thread:
a fault is a generator that yields how long to wait before its next step, stepped from
the officer simulator's waits.

    fieldterm chaos                                # every scenario, twice
    fieldterm chaos --scenario agent-kill --repeat 5 --seed 1234
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.mrz.engine import parse
from firmware.protocol.dockey import DocumentKey, keyed_hash64
from host_tools.chaos import netns
from host_tools.chaos.link import KioskLink
from host_tools.localregion import LocalRegion
from host_tools.localregion.errors import LocalRegionError

FINAL = ("NO_MATCH", "POSSIBLE_MATCH")
HITS = ("possible_match", "possible_match_offline")
SCREENS = ("clear", "possible_match", "unknown", "possible_match_offline", "not_listed", "rescan")
SETTLE_S = 180.0  # at most this long, after a fault is healed, for every scan to be answered

Fault = Iterator[float]  # yields seconds to wait before its next step


@dataclass
class Ctx:
    """What a fault acts on."""

    region: LocalRegion
    tid: str
    link: KioskLink | None
    rng: random.Random
    partition_s: float
    log: Callable[[str], None]
    notes: list[str] = field(default_factory=list)
    regional_env: dict[str, str] = field(default_factory=dict)  # e.g. the PostgreSQL store
    pg: Any = None  # the PgCluster behind the regional, with --store pg

    @property
    def agent(self) -> Any:
        return self.region.agents[self.tid]

    def restart_agent(self) -> None:
        wrap = self.link.argv if self.link is not None else None
        self.region.start_agent(self.tid, wait=False, wrap=wrap)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"    {text}")


def agent_kill(ctx: Ctx) -> Fault:
    ctx.agent.kill()
    ctx.note("agent SIGKILLed")
    yield ctx.rng.uniform(0.0, 2.0)
    ctx.restart_agent()
    ctx.note("agent restarted")


def regional_kill(ctx: Ctx) -> Fault:
    live = [r for r in ctx.region.regionals if r.running()]
    for r in live:
        r.kill()
    ctx.note(f"regional SIGKILLed ({len(live)} process)")
    yield ctx.rng.uniform(0.5, 5.0)
    ctx.region.start_regional(env=ctx.regional_env, wait=False)
    ctx.note("regional restarted")


def _broker_down(ctx: Ctx, *, kill: bool) -> Fault:
    assert ctx.region.broker is not None
    ctx.region.broker.stop(kill=kill)
    ctx.note("broker SIGKILLed" if kill else "broker stopped (SIGTERM)")
    yield ctx.rng.uniform(0.5, 5.0)
    ctx.region.start_broker()
    ctx.note("broker started")


def broker_restart(ctx: Ctx) -> Fault:
    return _broker_down(ctx, kill=False)


def broker_kill(ctx: Ctx) -> Fault:
    return _broker_down(ctx, kill=True)


def pg_restart(ctx: Ctx) -> Fault:
    if ctx.pg is None:
        raise LocalRegionError("pg-restart needs the regional on PostgreSQL (--store pg)")
    mode = ctx.rng.choice(["fast", "immediate"])
    ctx.pg.stop(mode)
    ctx.note(f"PostgreSQL stopped ({mode})")
    yield ctx.rng.uniform(1.0, 5.0)
    ctx.pg.resume()
    ctx.note("PostgreSQL started")


def _net(ctx: Ctx) -> KioskLink:
    if ctx.link is None:
        raise LocalRegionError("network scenarios need the kiosk behind a KioskLink (root)")
    return ctx.link


def partition(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(down=True)
    ctx.note(f"partition for {ctx.partition_s:.0f} s")
    yield ctx.partition_s
    link.clear()
    ctx.note("partition healed")


def flap(ctx: Ctx) -> Fault:
    link = _net(ctx)
    for i in range(6):  # down 5 s, up 5 s, three times
        link.set(down=i % 2 == 0)
        yield 5.0
    link.clear()
    ctx.note("link flapped every 5 s for 30 s")


def loss(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(loss=0.3)
    yield 30.0
    link.clear()
    ctx.note("30 % loss for 30 s")


def delay(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(delay_ms=500, jitter_ms=200)
    yield 30.0
    link.clear()
    ctx.note("500 +- 200 ms delay for 30 s")


def half_open(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(drop={"down"})  # the kiosk's packets reach the broker; nothing comes back
    yield 20.0
    link.clear()
    ctx.note("half-open (broker to kiosk dropped) for 20 s")


def scanner_storm(ctx: Ctx) -> Fault:
    sim = ctx.agent.scanner
    lines = ctx.region.listed[0]
    frame = sim.encode(list(lines))
    for _ in range(20):  # pulled mid-frame, plugged back in, twenty times
        if sim.wait_reader(0):
            sim.send_raw(frame[: ctx.rng.randrange(1, len(frame))])
        sim.unplug()
        yield ctx.rng.uniform(0.05, 0.4)
        sim.replug()
        yield ctx.rng.uniform(0.2, 0.8)
    ctx.note("scanner unplugged and replugged 20 times, each mid-frame")


def scanner_junk(ctx: Ctx) -> Fault:
    sim = ctx.agent.scanner
    sent = 0
    for _ in range(50):  # 100 kB every 0.1 s for 5 s: 1 MB/s
        if sim.wait_reader(0):
            sent += len(sim.send_junk(100_000))
        yield 0.1
    ctx.note(f"scanner sent {sent / 1e6:.1f} MB of junk in 5 s")


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    fault: Callable[[Ctx], Fault]
    network: bool = False


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("agent-kill", "kiosk agent SIGKILLed with queries in flight, then restarted", agent_kill),
        Scenario("regional-kill", "regional service SIGKILLed under load, then restarted", regional_kill),
        Scenario("broker-restart", "Mosquitto stopped and started", broker_restart),
        Scenario("broker-kill", "Mosquitto SIGKILLed and started", broker_kill),
        Scenario("partition", "kiosk-broker link fully down (60 s by default)", partition, True),
        Scenario("flap", "link down and up every 5 s", flap, True),
        Scenario("loss", "30 % packet loss both ways", loss, True),
        Scenario("delay", "500 +- 200 ms delay each way", delay, True),
        Scenario("half-open", "broker-to-kiosk packets silently dropped", half_open, True),
        Scenario("scanner-storm", "scanner unplugged and replugged mid-frame, 20 times", scanner_storm),
        Scenario("scanner-junk", "1 MB/s of junk from the scanner for 5 s", scanner_junk),
        Scenario("pg-restart", "the regional's PostgreSQL store stopped and started (--store pg)", pg_restart),
    )
}  # fmt: skip


class Officer:
    """Scans documents, acknowledges possible matches, and steps the fault while it waits."""

    def __init__(self, ctx: Ctx, docs: list[tuple[list[str], bool]]):
        self.ctx = ctx
        self.docs = docs
        self.fault: Fault | None = None
        self._due = 0.0
        self.sent = 0
        self.not_sent = 0

    def start_fault(self, fault: Fault) -> None:
        self.fault = fault
        self._due = time.monotonic()
        self._step()

    def _step(self) -> None:
        if self.fault is None or time.monotonic() < self._due:
            return
        try:
            self._due = time.monotonic() + next(self.fault)
        except StopIteration:
            self.fault = None

    @property
    def faulting(self) -> bool:
        return self.fault is not None

    def wait(self, pred: Callable[[dict[str, Any]], bool], start: int, timeout: float) -> Any:
        """The first event from ``start`` that matches, or None after ``timeout``."""
        events = self.ctx.agent.events
        end = time.monotonic() + timeout
        seen = start
        while time.monotonic() < end:
            self._step()
            events.poll()
            for ev in events.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(events.events)
            time.sleep(0.02)
        return None

    def scan_once(self) -> None:
        lines, _ = self.docs[self.ctx.rng.randrange(len(self.docs))]
        agent = self.ctx.agent
        mark = agent.events.mark()
        if not agent.scanner.wait_reader(0):  # the kiosk is down: nobody reads the port
            self.not_sent += 1
            self.wait(lambda e: False, mark, 0.5)
            return
        agent.scanner.send(lines)
        self.sent += 1
        doc = self.wait(lambda e: e["event"] in ("document", "refused"), mark, 6.0)
        if doc is None:
            return  # the kiosk is down or busy: the scan may never have been accepted
        if doc["event"] == "refused":
            self.ack(mark)
            return
        seq = doc.get("seq")
        shown = self.wait(
            lambda e: e["event"] == "state" and e.get("seq") == seq and e["after"] in SCREENS,
            mark, 8.0,
        )  # fmt: skip
        if shown is not None and shown["after"] in HITS:
            self.ack(mark)
        self.wait(lambda e: False, mark, self.ctx.rng.uniform(0.3, 1.2))  # the next traveller

    def ack(self, mark: int) -> None:
        self.ctx.agent.signal(signal.SIGUSR1)
        self.wait(lambda e: e.get("cause") == "acknowledged", mark, 3.0)


@dataclass
class Check:
    accepted: int = 0
    answered: int = 0
    lost: list[int] = field(default_factory=list)
    wrong: list[dict[str, Any]] = field(default_factory=list)
    clear_without_no_match: list[dict[str, Any]] = field(default_factory=list)
    unverified: int = 0
    offline_answers: int = 0
    offline_missed: list[int] = field(default_factory=list)  # listed, answered NOT LISTED
    offline_false_alarms: int = 0  # unlisted, answered LISTED: the filter's false positives
    sent: int = 0
    not_sent: int = 0  # the kiosk was down: its port had no reader
    settle_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the fault did

    @property
    def ok(self) -> bool:
        return not (self.lost or self.wrong or self.clear_without_no_match or self.offline_missed)


def expected_by_dkh(region: LocalRegion, index_key: bytes) -> dict[str, str]:
    """Keyed hash (16 hex) -> the outcome the list says, from the region's samples."""
    out = {}
    for lines, listed in [(x, True) for x in region.listed] + [(x, False) for x in region.unlisted]:
        dk = DocumentKey.from_mrz(parse(lines))
        out[keyed_hash64(index_key, dk).to_bytes(8, "big").hex()] = (
            "POSSIBLE_MATCH" if listed else "NO_MATCH"
        )
    return out


def audit_dkh(db: Path) -> dict[str, str]:
    """Query id (hex) -> keyed hash, from the regional's audit rows with a final outcome."""
    import sqlite3  # noqa: PLC0415

    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        con.execute("PRAGMA busy_timeout=5000")
        rows = con.execute(
            "SELECT query_id, dkh FROM audit WHERE outcome IN ('NO_MATCH','POSSIBLE_MATCH')"
        ).fetchall()
    finally:
        con.close()
    return {bytes(q).hex(): d for q, d in rows if q is not None and d}


def audited(events: list[dict[str, Any]], db: Path, limit: float = 10.0) -> dict[str, str]:
    """:func:`audit_dkh` once every verdict's query id is in it, or after ``limit`` s: the
    regional's audit writer commits in batches, a little after the answer went out."""
    want = {e["qid"] for e in events if e["event"] == "verdict"}
    end = time.monotonic() + limit
    while True:
        rows = audit_dkh(db)
        if want <= rows.keys() or time.monotonic() >= end:
            return rows
        time.sleep(0.1)


def check(events: list[dict[str, Any]], expected: dict[str, str], dkh: dict[str, str]) -> Check:
    c = Check()
    accepted = {e["seq"] for e in events if e["event"] == "document" and e.get("valid")}
    for e in events:
        if e["event"] == "start":
            accepted |= set(e.get("pending") or ())
    verdicts = {e["seq"]: e for e in events if e["event"] == "verdict"}
    by_qid = {e["qid"]: e for e in verdicts.values()}
    c.accepted, c.answered = len(accepted), len(accepted & set(verdicts))
    c.lost = sorted(accepted - set(verdicts))
    for e in events:
        if e["event"] != "offline" or e.get("outcome") not in ("LISTED", "NOT_LISTED"):
            continue
        c.offline_answers += 1
        want = expected.get(dkh.get(e.get("qid") or "", ""))
        if want == "POSSIBLE_MATCH" and e["outcome"] == "NOT_LISTED":
            c.offline_missed.append(e["seq"])
        elif want == "NO_MATCH" and e["outcome"] == "LISTED":
            c.offline_false_alarms += 1
    for v in verdicts.values():
        want = expected.get(dkh.get(v["qid"], ""))
        if want is None:
            c.unverified += 1
        elif v["outcome"] != want:
            c.wrong.append({"seq": v["seq"], "outcome": v["outcome"], "expected": want})
    for e in events:
        # before == after: a late verdict noted over another scan's screen, not a screen
        if (
            e["event"] == "state"
            and e["after"] in ("clear", "cleared")
            and e.get("before") != e["after"]
        ):
            final = by_qid.get(e.get("qid") or "")
            from_verdict = e.get("cause") in ("verdict", "late verdict")
            if not from_verdict or final is None or final["outcome"] != "NO_MATCH":
                c.clear_without_no_match.append({k: e.get(k) for k in ("seq", "cause", "after")})
    return c


def settle(officer: Officer, start: int, limit: float = SETTLE_S) -> float:
    """Wait (bounded) until every accepted scan since ``start`` has a final verdict; the
    seconds it took."""
    t0 = time.monotonic()
    events = officer.ctx.agent.events
    while time.monotonic() - t0 < limit:
        officer._step()
        events.poll()
        evs = events.events[start:]
        if not officer.faulting and officer.ctx.agent.running() and not check(evs, {}, {}).lost:
            break
        time.sleep(0.1)
    return round(time.monotonic() - t0, 1)


@dataclass(frozen=True)
class Plan:
    """How each scenario runs, and what to check it against."""

    repeat: int
    scans: int
    expected: dict[str, str]  # keyed hash -> outcome, from the samples
    audit: Path  # the regional's audit database
    docs: list[tuple[list[str], bool]]  # (MRZ lines, listed)


def run_scenario(ctx: Ctx, sc: Scenario, plan: Plan) -> list[Check]:
    out = []
    scans, docs, expected, audit = plan.scans, plan.docs, plan.expected, plan.audit
    for i in range(plan.repeat):
        officer = Officer(ctx, docs)
        ctx.notes.clear()
        start = ctx.agent.events.mark()
        at = ctx.rng.randrange(1, max(2, scans - 1))
        ctx.log(f"  {sc.name} #{i + 1}: fault after scan {at} of {scans}")
        for n in range(scans):
            if n == at:
                officer.start_fault(sc.fault(ctx))
            officer.scan_once()
        while officer.faulting:  # the fault outlasted the scans: keep scanning through it
            officer.scan_once()
        took = settle(officer, start)
        evs = ctx.agent.events.events[start:]
        c = check(evs, expected, audited(evs, audit))
        c.settle_s, c.sent, c.not_sent = took, officer.sent, officer.not_sent
        c.notes = list(ctx.notes)
        ctx.log(
            f"    sent {c.sent} ({c.not_sent} not: kiosk down), accepted {c.accepted}, answered"
            f" {c.answered}, lost {len(c.lost)}, wrong {len(c.wrong)}, clear without no-match"
            f" {len(c.clear_without_no_match)}, unverified {c.unverified}; offline answers"
            f" {c.offline_answers} ({len(c.offline_missed)} missed, {c.offline_false_alarms}"
            f" false alarms); settled in {took} s"
        )
        for what, items in (("LOST", c.lost), ("WRONG", c.wrong),
                            ("CLEAR WITHOUT NO-MATCH", c.clear_without_no_match),
                            ("MISSED OFFLINE", c.offline_missed)):  # fmt: skip
            if items:
                ctx.log(f"    {what}: {items[:5]}")
        out.append(c)
    return out


def main_run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    names = args.scenario or [n for n in SCENARIOS if n != "pg-restart" or args.store == "pg"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"chaos: unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}", file=sys.stderr)
        return 2
    why = netns.available()
    net = [n for n in names if SCENARIOS[n].network]
    if why and net:
        print(f"chaos: {', '.join(net)} need network namespaces: {why}", file=sys.stderr)
        return 4
    log = (
        (lambda s: print(s, file=sys.stderr, flush=True))
        if args.json
        else (lambda s: print(s, flush=True))
    )
    log(f"chaos: seed {seed} (replay with --seed {seed}); scenarios {', '.join(names)}; "
        f"{args.repeat} run(s) each, {args.scans} scans a run")  # fmt: skip
    rng = random.Random(seed)
    from host_tools.regional.config import RegionalConfig  # noqa: PLC0415
    from host_tools.sltd.lookup import read_index_key  # noqa: PLC0415

    link: KioskLink | None = None
    results: dict[str, list[Check]] = {}
    t0 = time.monotonic()
    with LocalRegion(Path(args.workdir) if args.workdir else None, keep=bool(args.workdir),
                     records=args.records, sample_size=20, region="chaos",
                     terminal_host="10.199.9.1" if not why else "127.0.0.1",
                     bind="127.0.0.1") as region:  # fmt: skip
        region.provision().generate_list()
        pg, regional_env = _pg_store(region) if args.store == "pg" else (None, {})
        region.start_broker()
        if not why:
            link = KioskLink(region.port, index=9, seed=seed).start()
        try:
            region.start_regional(env=regional_env)
            ctx = Ctx(region, region.terminals[0], link, rng, args.partition_s, log)
            ctx.regional_env, ctx.pg = regional_env, pg
            region.start_agent(ctx.tid, wrap=link.argv if link else None)
            cfg = RegionalConfig.load(region.regional_toml)
            expected = expected_by_dkh(region, read_index_key(cfg.index_key))
            docs = [(x, True) for x in region.listed] + [(x, False) for x in region.unlisted]
            plan = Plan(args.repeat, args.scans, expected, cfg.audit_db, docs)
            for name in names:
                results[name] = run_scenario(ctx, SCENARIOS[name], plan)
        finally:
            if link is not None:
                link_counts = link.counts()
                link.stop()
            if pg is not None:
                region.stop_regionals()
                pg.stop()
    summary = {
        "seed": seed,
        "link": link_counts if link is not None else None,
        "scenarios": {
            n: {
                "runs": len(cs),
                "sent": sum(c.sent for c in cs),
                "not_sent": sum(c.not_sent for c in cs),
                "accepted": sum(c.accepted for c in cs),
                "answered": sum(c.answered for c in cs),
                "lost": sum(len(c.lost) for c in cs),
                "wrong": sum(len(c.wrong) for c in cs),
                "clear_without_no_match": sum(len(c.clear_without_no_match) for c in cs),
                "unverified": sum(c.unverified for c in cs),
                "offline_answers": sum(c.offline_answers for c in cs),
                "offline_missed": sum(len(c.offline_missed) for c in cs),
                "offline_false_alarms": sum(c.offline_false_alarms for c in cs),
                "max_settle_s": max((c.settle_s for c in cs), default=0.0),
                "faults": [c.notes for c in cs],
            }
            for n, cs in results.items()
        },
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    bad = [n for n, cs in results.items() if not all(c.ok for c in cs)]
    summary["ok"] = not bad
    print(json.dumps(summary) if args.json else _text(summary), flush=True)
    if bad:
        print(
            f"chaos: promises broken in {', '.join(bad)} (replay with --seed {seed})",
            file=sys.stderr,
        )
    return 1 if bad else 0


def _pg_store(region: LocalRegion) -> tuple[Any, dict[str, str]]:
    """A PostgreSQL cluster holding the region's generated list, and the regional's
    environment that points it there."""
    from host_tools.sltd.pgcluster import PgCluster  # noqa: PLC0415
    from host_tools.sltd.store import open_store  # noqa: PLC0415

    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    pg = PgCluster(region.dir / "pg", settings=durable).start()  # a crash must lose nothing
    with open_store(region.sltd_db) as src, open_store(pg.url, create=True) as dst:
        with src.key_snapshot() as (_, batches):
            for batch in batches:
                recs = [src.get(*k) for k in batch]
                dst.upsert([r for r in recs if r is not None])
    return pg, {"FIELDTERM_REGIONAL__SLTD_DB": pg.url}


def _text(s: dict[str, Any]) -> str:
    lines = [f"chaos: seed {s['seed']}, {s['elapsed_s']} s"]
    for n, r in s["scenarios"].items():
        lines.append(
            f"  {n:15} {r['runs']} runs: {r['accepted']} accepted, {r['answered']} answered,"
            f" {r['lost']} lost, {r['wrong']} wrong, {r['clear_without_no_match']} clear without"
            f" no-match, {r['offline_missed']} missed offline, {r['unverified']} unverified;"
            f" settled within {r['max_settle_s']} s"
        )
    lines.append("chaos: " + ("every promise held" if s["ok"] else "PROMISES BROKEN"))
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chaos",
        help="inject faults into a local region and check that no scan is lost or wrong",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    p.add_argument(
        "--repeat", type=int, default=2, help="runs per scenario, each at a random instant (2)"
    )
    p.add_argument("--scans", type=int, default=8, help="scans per run (8)")
    p.add_argument("--seed", type=int, help="random seed (printed; default: a fresh one)")
    p.add_argument("--partition-s", type=float, default=60.0, help="length of a partition (60)")
    p.add_argument("--records", type=int, default=2000, help="SLTD records in the region (2000)")
    p.add_argument(
        "--store",
        choices=("sqlite", "pg"),
        default="sqlite",
        help="the regional's SLTD store: SQLite (default) or a PostgreSQL cluster"
        " started here (needed by pg-restart)",
    )
    p.add_argument("--workdir", help="keep the region in this directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="one JSON summary line on stdout")
    p.set_defaults(func=main_run)
