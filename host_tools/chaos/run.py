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
  means the regional answered and lost its audit row;
- **duplicated**: a query id with two final verdicts, or one scan number given to two
  documents;
- **crashes**: an agent or regional exit the harness did not cause, or a Python traceback
  in their logs during the run;
- **audit**: the agent's chain verified with ``fieldterm audit verify`` after each run (a
  problem nobody injected breaks the run; after a power cut, where the cut truncated it),
  and the regional's audit store's ``PRAGMA quick_check``;
- **unmet**: a scenario's own promise (the storage-full screen, an alarm for a damaged
  file, the clock step seen by the agent);
- **recovery**: from the fault's end to a fresh scan answered online (p50 and max).

The storage and clock scenarios live in :mod:`host_tools.chaos.storage` and
:mod:`host_tools.chaos.clock`; the power-cut file system in :mod:`host_tools.chaos.lazyfs`.
The last line is ``chaos: N faults, N scans, N lost, N wrong, N duplicated, N crashes``.

The agent sits behind :class:`~host_tools.chaos.link.KioskLink` (its own network
namespace, a user-space link to the broker) when namespaces can be made here, so the
network scenarios act on its real TCP connection. Everything is driven from one thread:
a fault is a generator that yields how long to wait before its next step, stepped from
the officer simulator's waits.

    fieldterm chaos                                # every scenario, twice
    fieldterm chaos --scenario agent-kill --repeat 5 --seed 1234
    fieldterm chaos --repeat 1 --scans 3 --partition-s 6 --fault-s 4 --store pg
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.mrz.engine import parse
from firmware.protocol.dockey import DocumentKey, keyed_hash64
from host_tools.chaos import clock, netns, storage
from host_tools.chaos.ctx import Ctx, Fault
from host_tools.chaos.link import KioskLink
from host_tools.localregion import LocalRegion
from host_tools.localregion.errors import LocalRegionError

FINAL = ("NO_MATCH", "POSSIBLE_MATCH")
HITS = ("possible_match", "possible_match_offline")
SCREENS = ("clear", "possible_match", "unknown", "possible_match_offline", "not_listed", "rescan")
SETTLE_S = 180.0  # at most this long, after a fault is healed, for every scan to be answered


def agent_kill(ctx: Ctx) -> Fault:
    ctx.kill_agent()
    ctx.param("agent SIGKILLed")
    yield ctx.rng.uniform(0.0, 2.0)
    ctx.restart_agent()
    ctx.note("agent restarted")


def regional_kill(ctx: Ctx) -> Fault:
    live = [r for r in ctx.region.regionals if r.running()]
    for r in live:
        ctx.expected_exit.add(r.pid)
        r.kill()
    ctx.param(f"regional SIGKILLed ({len(live)} process)")
    yield ctx.rng.uniform(0.5, 5.0)
    ctx.region.start_regional(env=ctx.regional_env, wait=False)
    ctx.note("regional restarted")


def _broker_down(ctx: Ctx, *, kill: bool) -> Fault:
    assert ctx.region.broker is not None
    ctx.region.broker.stop(kill=kill)
    ctx.param("broker SIGKILLed" if kill else "broker stopped (SIGTERM)")
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
    ctx.param(f"PostgreSQL stopped ({mode})")
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
    ctx.param(f"partition for {ctx.partition_s:.0f} s")
    yield ctx.partition_s
    link.clear()
    ctx.note("partition healed")


def flap(ctx: Ctx) -> Fault:
    link = _net(ctx)
    every = ctx.seconds(5.0)
    for i in range(6):  # down, up, three times
        link.set(down=i % 2 == 0)
        yield every
    link.clear()
    ctx.param(f"link flapped every {every:g} s for {6 * every:g} s")


def loss(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(loss=0.3)
    hold = ctx.seconds(30.0)
    yield hold
    link.clear()
    ctx.param(f"30 % loss for {hold:g} s")


def delay(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(delay_ms=500, jitter_ms=200)
    hold = ctx.seconds(30.0)
    yield hold
    link.clear()
    ctx.param(f"500 +- 200 ms delay for {hold:g} s")


def half_open(ctx: Ctx) -> Fault:
    link = _net(ctx)
    link.set(drop={"down"})  # the kiosk's packets reach the broker; nothing comes back
    hold = ctx.seconds(20.0)
    yield hold
    link.clear()
    ctx.param(f"half-open (broker to kiosk dropped) for {hold:g} s")


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
    ctx.param("scanner unplugged and replugged 20 times, each mid-frame")


def scanner_junk(ctx: Ctx) -> Fault:
    sim = ctx.agent.scanner
    sent = 0
    for _ in range(50):  # 100 kB every 0.1 s for 5 s: 1 MB/s
        if sim.wait_reader(0):
            sent += len(sim.send_junk(100_000))
        yield 0.1
    ctx.param(f"scanner sent {sent / 1e6:.1f} MB of junk in 5 s")


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    fault: Callable[[Ctx], Fault]
    network: bool = False
    setup: Callable[[Ctx], None] | None = None  # before its runs (e.g. mount a file system)
    teardown: Callable[[Ctx], None] | None = None  # after them
    verify: Callable[[Ctx, list[dict[str, Any]]], list[str]] | None = None  # its own checks
    damages_audit: bool = False  # its fault edits the audit log on purpose
    timed_s: float = 0.0  # how long its fault lasts (capped by --fault-s), for planning
    fixed_s: float = 2.0  # what its fault takes besides (kills, restarts, a storm)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("agent-kill", "kiosk agent SIGKILLed with queries in flight, then restarted", agent_kill),
        Scenario("regional-kill", "regional service SIGKILLed under load, then restarted", regional_kill,
                 fixed_s=4.0),
        Scenario("broker-restart", "Mosquitto stopped and started", broker_restart, fixed_s=4.0),
        Scenario("broker-kill", "Mosquitto SIGKILLed and started", broker_kill, fixed_s=4.0),
        Scenario("partition", "kiosk-broker link fully down (60 s by default)", partition, True),
        Scenario("flap", "link down and up every 5 s", flap, True, timed_s=30.0),
        Scenario("loss", "30 % packet loss both ways", loss, True, timed_s=30.0),
        Scenario("delay", "500 +- 200 ms delay each way", delay, True, timed_s=30.0),
        Scenario("half-open", "broker-to-kiosk packets silently dropped", half_open, True, timed_s=20.0),
        Scenario("scanner-storm", "scanner unplugged and replugged mid-frame, 20 times", scanner_storm,
                 fixed_s=15.0),
        Scenario("scanner-junk", "1 MB/s of junk from the scanner for 5 s", scanner_junk, fixed_s=5.0),
        Scenario("pg-restart", "the regional's PostgreSQL store stopped and started (--store pg)", pg_restart,
                 fixed_s=4.0),
        Scenario("power-cut", "power cut: agent SIGKILLed and unsynced writes dropped (FUSE)",
                 storage.power_cut, setup=storage.power_setup, teardown=storage.power_teardown),
        Scenario("disk-full", "state directory (tmpfs) filled to the last byte, then freed",
                 storage.disk_full, setup=storage.full_setup, teardown=storage.full_teardown,
                 verify=storage.full_verify, timed_s=20.0, fixed_s=5.0),
        Scenario("corrupt-files", "outbox or audit log, and the offline list, damaged between runs",
                 storage.corrupt_files, verify=storage.corrupt_verify, damages_audit=True),
        Scenario("regional-stores", "regional SIGKILLed, its replay or audit store damaged, restarted",
                 storage.regional_stores, verify=storage.regional_stores_verify),
        Scenario("wal-lost", "the outbox's WAL and shm files lost between runs (known defect)",
                 storage.wal_lost, verify=storage.wal_verify),
        Scenario("clock-step", "wall clock stepped by minutes or days, forward or back (libfaketime)",
                 clock.clock_step, setup=clock.clock_setup, teardown=clock.clock_teardown,
                 verify=clock.clock_verify, timed_s=20.0),
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
        self.healed_at: float | None = None  # when the fault's last step ran

    def start_fault(self, fault: Fault) -> None:
        self.fault = fault
        self._due = time.monotonic()
        self._step()

    def _step(self) -> None:
        ctx = self.ctx
        crashes = len(ctx.crashes)
        if ctx.check_agent_exit() and len(ctx.crashes) > crashes:
            ctx.restart_agent()  # as systemd would; the crash is counted
        if self.fault is None or time.monotonic() < self._due:
            return
        try:
            self._due = time.monotonic() + next(self.fault)
        except StopIteration:
            self.fault = None
            self.healed_at = time.monotonic()

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
    duplicated: list[str] = field(default_factory=list)  # a query answered twice, a seq reused
    accounted: list[int] = field(default_factory=list)  # lost, but named by the agent's alarm
    lost_qids: dict[int, str] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)  # exits not caused, tracebacks
    unmet: list[str] = field(default_factory=list)  # the scenario's own expectations
    audit_broken: list[str] = field(default_factory=list)  # chain problems nobody injected
    audit: list[str] = field(default_factory=list)  # what the audit checks found (reported)
    sent: int = 0
    not_sent: int = 0  # the kiosk was down: its port had no reader
    settle_s: float = 0.0
    recovery_s: float | None = None  # heal -> a fresh scan answered online
    notes: list[str] = field(default_factory=list)  # what the fault did
    params: list[str] = field(default_factory=list)  # the fault's parameters

    @property
    def wrong_count(self) -> int:
        """Everything the officer was shown wrongly: verdicts against the list, CLEAR
        without a NO_MATCH, offline misses, a scenario's screen that never came."""
        return (
            len(self.wrong) + len(self.clear_without_no_match) + len(self.offline_missed)
            + len(self.unmet)
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.wrong_count or self.duplicated or self.crashes or self.audit_broken
        )


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
    qid_of = {e["seq"]: e.get("qid") or "" for e in events if e["event"] == "document"}
    c.lost_qids = {s: qid_of.get(s, "") for s in c.lost}
    c.duplicated = duplicates(events)
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


def duplicates(events: list[dict[str, Any]]) -> list[str]:
    """Answered twice: a query id with two final verdicts, or a scan number given to two
    different documents (a counter that restarted)."""
    out = []
    per_qid: dict[str, int] = {}
    for e in events:
        if e["event"] == "verdict":
            per_qid[e["qid"]] = per_qid.get(e["qid"], 0) + 1
    out += [f"query {q[:12]} answered {n} times" for q, n in per_qid.items() if n > 1]
    per_seq: dict[int, set[str]] = {}
    for e in events:
        if e["event"] == "document" and e.get("valid") and e.get("qid"):
            per_seq.setdefault(e["seq"], set()).add(e["qid"])
    out += [f"scan {s} given to {len(q)} documents" for s, q in per_seq.items() if len(q) > 1]
    return out


def settle(officer: Officer, start: int, limit: float = SETTLE_S) -> tuple[float, float | None]:
    """Wait (bounded) until every accepted scan since ``start`` has a final verdict, then
    for one fresh scan answered online. The seconds the first took, and the recovery time
    (from the fault's end to that fresh verdict; None if it never came)."""
    t0 = time.monotonic()
    events = officer.ctx.agent.events
    while time.monotonic() - t0 < limit:
        officer._step()
        events.poll()
        evs = events.events[start:]
        if not officer.faulting and officer.ctx.agent.running() and not check(evs, {}, {}).lost:
            break
        time.sleep(0.1)
    took = round(time.monotonic() - t0, 1)
    return took, probe(officer, officer.healed_at or t0, t0 + limit)


def _verdict_for(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "verdict" and e.get("seq") == seq


def probe(officer: Officer, healed: float, end: float) -> float | None:
    """Scan an unlisted document until the kiosk answers it online (acknowledging a FAULT
    or refusal first); seconds from ``healed`` to that verdict."""
    ctx = officer.ctx
    lines = next((d for d, listed in officer.docs if not listed), officer.docs[0][0])
    while time.monotonic() < end:
        officer._step()
        agent = ctx.agent
        if not agent.running() or not agent.scanner.wait_reader(0):
            officer.wait(lambda e: False, agent.events.mark(), 0.2)
            continue
        mark = agent.events.mark()
        agent.scanner.send(lines)
        officer.sent += 1
        doc = officer.wait(lambda e: e["event"] in ("document", "refused"), mark, 6.0)
        if doc is None:
            continue
        if doc["event"] == "refused" or not doc.get("valid"):
            officer.ack(mark)
            continue
        seq = doc["seq"]
        left = max(0.0, end - time.monotonic())
        v = officer.wait(_verdict_for(seq), mark, left)
        if v is not None:
            return round(time.monotonic() - healed, 1)
    return None


@dataclass(frozen=True)
class Plan:
    """How each scenario runs, and what to check it against."""

    repeat: int
    scans: int
    expected: dict[str, str]  # keyed hash -> outcome, from the samples
    audit: Path  # the regional's audit database
    docs: list[tuple[list[str], bool]]  # (MRZ lines, listed)


def run_scenario(ctx: Ctx, sc: Scenario, plan: Plan) -> list[Check]:
    out: list[Check] = []
    if sc.setup is not None:
        sc.setup(ctx)
    try:
        for i in range(plan.repeat):
            ctx.run_index = i
            out.append(run_once(ctx, sc, plan, i))
    finally:
        if sc.teardown is not None:
            sc.teardown(ctx)
    return out


def run_once(ctx: Ctx, sc: Scenario, plan: Plan, i: int) -> Check:
    scans, docs, expected, audit = plan.scans, plan.docs, plan.expected, plan.audit
    officer = Officer(ctx, docs)
    ctx.notes.clear()
    ctx.params.clear()
    ctx.audit_notes.clear()
    ctx.expect.clear()
    ctx.crashes.clear()
    ctx.recovered_at = None
    logs = _log_sizes(ctx)
    start = ctx.agent.events.mark()
    at = ctx.rng.randrange(1, max(2, scans - 1))
    ctx.log(f"  {sc.name} #{i + 1}: fault after scan {at} of {scans}")
    for n in range(scans):
        if n == at:
            officer.start_fault(sc.fault(ctx))
        officer.scan_once()
    while officer.faulting:  # the fault outlasted the scans: keep scanning through it
        officer.scan_once()
    took, recovery = settle(officer, start)
    if ctx.recovered_at is not None and recovery is not None and officer.healed_at:
        recovery = round(recovery - (ctx.recovered_at - officer.healed_at), 1)
    evs = ctx.agent.events.events[start:]
    c = check(evs, expected, audited(evs, audit))
    c.settle_s, c.recovery_s, c.sent, c.not_sent = took, recovery, officer.sent, officer.not_sent
    c.notes, c.params = list(ctx.notes), list(ctx.params)
    if c.lost:
        c.accounted = sorted(storage.accounted(c.lost_qids, evs))
        c.lost = [s for s in c.lost if s not in c.accounted]
    if sc.verify is not None:
        c.unmet += sc.verify(ctx, evs)
    if recovery is None:
        c.unmet.append(f"no fresh scan answered online within {SETTLE_S:.0f} s of the heal")
    ctx.check_agent_exit()
    ctx.check_regionals()
    crashed, logged = _tracebacks(logs)
    c.crashes = list(ctx.crashes) + crashed
    c.audit += [f"logged (handled) {x}" for x in logged[:3]]
    if len(logged) > 3:
        c.audit.append(f"... {len(logged) - 3} more logged tracebacks")
    check_audits(ctx, sc, c, audit)
    ctx.log(
        f"    sent {c.sent} ({c.not_sent} not: kiosk down), accepted {c.accepted}, answered"
        f" {c.answered}, lost {len(c.lost)} (+{len(c.accounted)} named by an alarm), wrong"
        f" {len(c.wrong)}, clear without no-match {len(c.clear_without_no_match)}, duplicated"
        f" {len(c.duplicated)}, crashes {len(c.crashes)}, unverified {c.unverified}; offline"
        f" answers {c.offline_answers} ({len(c.offline_missed)} missed,"
        f" {c.offline_false_alarms} false alarms); settled in {took} s, recovered in"
        f" {recovery} s"
    )
    for what, items in (("LOST", c.lost), ("WRONG", c.wrong),
                        ("CLEAR WITHOUT NO-MATCH", c.clear_without_no_match),
                        ("MISSED OFFLINE", c.offline_missed), ("DUPLICATED", c.duplicated),
                        ("CRASH", c.crashes), ("UNMET", c.unmet),
                        ("AUDIT BROKEN", c.audit_broken)):  # fmt: skip
        if items:
            ctx.log(f"    {what}: {items[:5]}")
    for a in c.audit:
        ctx.log(f"    audit: {a}")
    return c


def _log_sizes(ctx: Ctx) -> dict[Path, int]:
    paths = [ctx.agent.log] + [p for r in ctx.region.regionals for p in (r.log, r.stderr_log) if p]
    return {p: p.stat().st_size if p.exists() else 0 for p in paths}


_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (ERROR|WARNING|CRITICAL|INFO) ")


def _tracebacks(sizes: dict[Path, int]) -> tuple[list[str], list[str]]:
    """Python tracebacks written to the agent's or the regional's log since ``sizes``:
    (uncaught -- a crash, or an exception that escaped a thread --, logged with a log
    record by code that handled the error, e.g. the SLTD store refusing connections while
    PostgreSQL restarts)."""
    crashed: list[str] = []
    logged: list[str] = []
    for path, size in sizes.items():
        if not path.exists():
            continue
        with path.open("rb") as fh:
            fh.seek(size)
            text = fh.read().decode(errors="replace")
        lines = text.splitlines()
        into: list[str] = crashed
        for i, line in enumerate(lines):
            if not line.startswith("Traceback (most recent call last):"):
                continue
            last = next((x for x in lines[i + 1 :] if x and not x.startswith(" ")), "?")
            what = f"traceback in {path.name}: {last[:160]}"
            before = lines[i - 1] if i else ""
            if not before.strip() and i >= 2 and lines[i - 2].startswith(_CHAINED):
                into[-1] = what  # the same exception's chain: one entry, its last exception
                continue
            into = logged if _LOG_RECORD.match(before) else crashed
            into.append(what)
    return crashed, logged


#: How Python joins the tracebacks of one chained exception.
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def check_audits(ctx: Ctx, sc: Scenario, c: Check, regional_db: Path) -> None:
    """Both audit trails after a run: the agent's chain with the product's verify (a
    problem not seen before, and not injected by the scenario, breaks the run), and the
    regional's store's integrity."""
    import sqlite3  # noqa: PLC0415

    c.audit += ctx.audit_notes
    rep = storage.verify_audit(ctx)
    new = [p for p in rep.problems if p not in ctx.known_audit_problems]
    ctx.known_audit_problems.update(rep.problems)
    c.audit.append(
        f"agent chain: {rep.entries} lines to seq {rep.head_seq}, {len(rep.problems)} problem(s)"
    )
    if new:
        (c.audit if sc.damages_audit else c.audit_broken).extend(
            f"agent audit: {p}" + (" (injected)" if sc.damages_audit else "") for p in new[:5]
        )
    if regional_db.exists():
        con = sqlite3.connect(f"file:{regional_db}?mode=ro", uri=True)
        try:
            con.execute("PRAGMA busy_timeout=5000")
            verdict = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
        if verdict != "ok":
            c.audit_broken.append(f"regional audit store: quick_check says {verdict}")


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end a run as ^C does: the region is stopped on the way out (if
    this process is SIGKILLed instead, :mod:`host_tools.reaper` stops its processes)."""

    def stop(signum: int, _frame: object) -> None:
        for s in (signal.SIGTERM, signal.SIGHUP):  # a second one must not cut the cleanup
            signal.signal(s, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)


def main_run(args: argparse.Namespace) -> int:
    _stop_on_signals()
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
    if args.parallel > 1:
        return _main_parallel(args, names, seed, log)
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
                     terminal_host=f"10.199.{args.link_index}.1" if not why else "127.0.0.1",
                     bind="127.0.0.1") as region:  # fmt: skip
        region.provision().generate_list()
        pg, regional_env = _pg_store(region) if args.store == "pg" else (None, {})
        region.start_broker()
        if not why:
            link = KioskLink(region.port, index=args.link_index, seed=seed).start()
        try:
            region.start_regional(env=regional_env)
            ctx = Ctx(region, region.terminals[0], link, rng, args.partition_s, log,
                      fault_s=args.fault_s)  # fmt: skip
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
    summary = summarize(results)
    summary["seed"] = seed
    summary["link"] = link_counts if link is not None else None
    summary["elapsed_s"] = round(time.monotonic() - t0, 1)
    summary["last_line"] = last_line(summary)
    print(json.dumps(summary) if args.json else table(summary), flush=True)
    if not summary["ok"]:
        bad = [n for n, r in summary["scenarios"].items() if not r["ok"]]
        print(
            f"chaos: promises broken in {', '.join(bad)} (replay with --seed {seed})",
            file=sys.stderr,
        )
    return 0 if summary["ok"] else 1


def fault_length(args: argparse.Namespace) -> Callable[[str], float]:
    """Scenario name -> how long one of its faults is expected to last with ``args``."""

    def length(name: str) -> float:
        sc = SCENARIOS[name]
        if name == "partition":
            return float(args.partition_s)
        timed = sc.timed_s if args.fault_s is None else min(sc.timed_s, args.fault_s)
        return timed + sc.fixed_s

    return length


def _main_parallel(
    args: argparse.Namespace, names: list[str], seed: int, log: Callable[[str], None]
) -> int:
    from host_tools.chaos import parallel  # noqa: PLC0415

    passthrough = ["--store", args.store, "--partition-s", str(args.partition_s),
                   "--records", str(args.records)]  # fmt: skip
    if args.fault_s is not None:
        passthrough += ["--fault-s", str(args.fault_s)]
    log(f"chaos: {len(names)} scenarios over {args.parallel} local regions at once")
    children = parallel.plan(
        names, fault_length(args), k=args.parallel, seed=seed, repeat=args.repeat,
        scans=args.scans, passthrough=passthrough, first_index=args.link_index,
    )  # fmt: skip
    merged, problems = parallel.main(children, log)
    merged["seed"] = seed
    merged["last_line"] = last_line(merged)
    print(json.dumps(merged) if args.json else table(merged), flush=True)
    for p in problems:
        print(f"chaos: {p}", file=sys.stderr)
    if not merged["ok"]:
        bad = [n for n, r in merged["scenarios"].items() if not r["ok"]]
        print(f"chaos: promises broken in {', '.join(bad) or 'a child'} (each child's replay"
              " line is printed above)", file=sys.stderr)  # fmt: skip
    return 0 if merged["ok"] else 1


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def summarize(results: dict[str, list[Check]]) -> dict[str, Any]:
    """Per scenario totals, the grand totals, and ``ok`` (every promise held)."""
    scen: dict[str, Any] = {}
    for n, cs in results.items():
        rec = [c.recovery_s for c in cs if c.recovery_s is not None]
        params: list[str] = []
        for c in cs:
            params += [p for p in c.params if p not in params]
        scen[n] = {
            "runs": len(cs),
            "sent": sum(c.sent for c in cs),
            "not_sent": sum(c.not_sent for c in cs),
            "accepted": sum(c.accepted for c in cs),
            "answered": sum(c.answered for c in cs),
            "lost": sum(len(c.lost) for c in cs),
            "accounted": sum(len(c.accounted) for c in cs),
            "wrong": sum(c.wrong_count for c in cs),
            "wrong_verdicts": sum(len(c.wrong) for c in cs),
            "clear_without_no_match": sum(len(c.clear_without_no_match) for c in cs),
            "offline_missed": sum(len(c.offline_missed) for c in cs),
            "unmet": [u for c in cs for u in c.unmet],
            "duplicated": sum(len(c.duplicated) for c in cs),
            "crashes": sum(len(c.crashes) for c in cs),
            "crash_details": [x for c in cs for x in c.crashes][:10],
            "audit_broken": [x for c in cs for x in c.audit_broken][:10],
            "audit": [x for c in cs for x in c.audit][:20],
            "unverified": sum(c.unverified for c in cs),
            "offline_answers": sum(c.offline_answers for c in cs),
            "offline_false_alarms": sum(c.offline_false_alarms for c in cs),
            "max_settle_s": max((c.settle_s for c in cs), default=0.0),
            "recovery_p50_s": _pct(rec, 0.5),
            "recovery_max_s": max(rec) if rec else None,
            "params": params,
            "faults": [c.notes for c in cs],
            "ok": all(c.ok for c in cs),
        }
    total = {k: sum(r[k] for r in scen.values())
             for k in ("runs", "accepted", "lost", "wrong", "duplicated", "crashes")}  # fmt: skip
    return {"scenarios": scen, "total": total, "ok": all(r["ok"] for r in scen.values())}


def last_line(summary: dict[str, Any]) -> str:
    """``chaos: N faults, N scans, N lost, N wrong, N duplicated, N crashes``."""
    t = summary["total"]
    return (
        f"chaos: {t['runs']} faults, {t['accepted']} scans, {t['lost']} lost, {t['wrong']} wrong,"
        f" {t['duplicated']} duplicated, {t['crashes']} crashes"
    )


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(s: dict[str, Any]) -> str:
    """The per-scenario table, then what broke, then :func:`last_line`."""
    head = ("scenario", "runs", "scans", "lost", "wrong", "dup", "crash", "rec p50", "rec max")
    lines = [f"chaos: seed {s.get('seed')}, {s.get('elapsed_s')} s"]
    lines.append(f"{head[0]:15} " + " ".join(f"{h:>7}" for h in head[1:]) + "  fault parameters")
    for n, r in s["scenarios"].items():
        cells = (r["runs"], r["accepted"], r["lost"], r["wrong"], r["duplicated"], r["crashes"],
                 _s(r["recovery_p50_s"]), _s(r["recovery_max_s"]))  # fmt: skip
        params = "; ".join(r["params"])
        if len(params) > 90:
            params = params[:87] + "..."
        lines.append(f"{n:15} " + " ".join(f"{x:>7}" for x in cells) + f"  {params}")
    for n, r in s["scenarios"].items():
        for what, items in (("unmet", r["unmet"]), ("crash", r["crash_details"]),
                            ("audit broken", r["audit_broken"])):  # fmt: skip
            lines += [f"  {n}: {what}: {x}" for x in items[:5]]
        if r["accounted"]:
            lines.append(f"  {n}: {r['accounted']} scan(s) lost with the damaged outbox, "
                         "each named by the agent's alarm")  # fmt: skip
    lines.append(last_line(s))
    return "\n".join(lines)


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
    p.add_argument(
        "--fault-s",
        type=float,
        help="at most this long for every other timed fault (loss, delay, half-open, flap"
        " period, disk full, clock step); default: each scenario's own (20-30 s)",
    )
    p.add_argument("--records", type=int, default=2000, help="SLTD records in the region (2000)")
    p.add_argument(
        "--store",
        choices=("sqlite", "pg"),
        default="sqlite",
        help="the regional's SLTD store: SQLite (default) or a PostgreSQL cluster"
        " started here (needed by pg-restart)",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="K",
        help="share the scenarios out over K local regions run at once, each a child"
        " 'fieldterm chaos' with a seed of its own (1: one region, in this process)",
    )
    p.add_argument(
        "--link-index",
        type=int,
        default=9,
        help="network namespaces ftk-N/ftg-N on 10.199.N.0/30 for the kiosk's link (9);"
        " --parallel gives child i N + i",
    )
    p.add_argument("--workdir", help="keep the region in this directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="one JSON summary line on stdout")
    p.set_defaults(func=main_run)
    from host_tools.chaos import fuzz_mqtt  # noqa: PLC0415 - only for this command's parser

    subs = p.add_subparsers(
        dest="chaos_command", metavar="{fuzz-mqtt}", title="other runs (instead of the scenarios)"
    )
    fz = subs.add_parser(
        "fuzz-mqtt",
        help="live fuzz: mutated raw MQTT payloads from a terminal's certificate through a real"
        " broker to a real regional, every payload accounted for",
        description=fuzz_mqtt.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fuzz_mqtt.add_arguments(fz)
    fz.set_defaults(func=fuzz_mqtt.main_args)
