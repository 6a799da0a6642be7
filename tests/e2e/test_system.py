"""The whole system, real parts: provisioning, Mosquitto with mutual TLS and the generated
ACL, the regional service (a subprocess), the sealed query client, a pty scanner, the agent.

The region is the shared :class:`~host_tools.localregion.LocalRegion`; the agent runs
in-process here (tests may import kiosk code) so that only the LEDs, buzzer and display
are simulated (recording mocks) and the officer's view is asserted as a sequence. One test
runs the agent as the region's process instead, to SIGKILL it.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from firmware.agent.agent import Agent
from firmware.agent.audit import load_audit_key, verify_file
from firmware.agent.config import load_agent_config
from firmware.agent.outbox import Outbox
from host_tools.localregion import LocalRegion
from host_tools.localregion.documents import bad_check_digit
from host_tools.localregion.runner import fieldterm_argv
from tests.e2e.rig import AgentThread, read_events, shown, wait_for, wait_history

pytestmark = pytest.mark.slow

TID = "kiosk-001"


@pytest.fixture
def system(tmp_path):
    with LocalRegion(tmp_path / "region", terminals=(TID,), records=5000, seed=11) as r:
        r.provision().generate_list()
        r.start_broker()
        r.start_regional()
        r.sim = r.start_scanner()
        yield r


def state_dir(d):
    return d.state_dir(TID)


def events_path(d):
    return d.dir / "agents" / TID / "events.jsonl"


def samples(d):
    listed = [x for x in d.listed if len(x) == 2]
    unlisted = [x for x in d.unlisted if len(x) == 2]
    return listed, unlisted


def agent_config(d, **agent_overrides):
    events_path(d).parent.mkdir(parents=True, exist_ok=True)
    over = {
        "scanner": {"port": d.sim.path, "framing": "lines"},
        "signals": {"backend": "mock", "display": "mock"},
        "agent": {
            "state_dir": str(state_dir(d)),
            "events_file": str(events_path(d)),
            "result_hold": 0.3,
            "unknown_hold": 0.3,
            "rescan_hold": 0.3,
            "retry_interval": 0.5,
            **agent_overrides,
        },
    }
    return load_agent_config(d.terminal_toml(TID), overrides=over)


def panel_states(agent):
    """Distinct consecutive states the mock LED panel was told to show."""
    return shown(agent._signals.panel)


def verdicts(d):
    return [
        (e["seq"], e["outcome"]) for e in read_events(events_path(d)) if e["event"] == "verdict"
    ]


def link_up(d):
    return any(e["event"] == "link" and e["up"] for e in read_events(events_path(d)))


def test_scan_to_signals_through_the_real_system(system):
    d = system
    listed, unlisted = samples(d)
    agent = Agent(agent_config(d))
    seen: list[str] = ["offline", "idle"]

    def expect(*more: str) -> None:
        """The panel's whole history so far, so a transient state cannot be missed."""
        seen.extend(more)
        wait_history(lambda: panel_states(agent), list(seen), 30, f"panel up to {seen[-1]}")

    with AgentThread(agent):
        wait_for(lambda: link_up(d), 30, "broker link")
        expect()
        d.sim.send(unlisted[0])
        expect("reading", "querying", "clear", "idle")
        d.sim.send(listed[0])
        expect("reading", "querying", "possible_match")  # latched: nothing follows
        agent._signals.button.press()  # the mock acknowledge button
        expect("idle")
        d.sim.send(bad_check_digit(unlisted[1]))
        expect("reading", "rescan", "idle")
    assert verdicts(d) == [(1, "NO_MATCH"), (2, "POSSIBLE_MATCH")]
    key = load_audit_key(d.bundle(TID) / "audit.key")
    rep = verify_file(state_dir(d) / "audit.log", key)
    assert rep.ok and rep.counts["verdict"] == 2
    raw = (state_dir(d) / "audit.log").read_text()
    assert unlisted[0][1][:9].rstrip("<") not in raw  # no document number in the audit log


def test_broker_killed_mid_query_delivers_once(system):
    d = system
    _, unlisted = samples(d)
    agent = Agent(agent_config(d))
    with AgentThread(agent):
        wait_for(lambda: link_up(d), 30, "broker link")
        d.regional.signal(signal.SIGSTOP)  # the regional is stuck: the query is in flight
        try:
            d.sim.send(unlisted[0])
            wait_for(lambda: "querying" in panel_states(agent), 10, "querying")
            d.broker.stop(kill=True)
            # UNKNOWN, or NOT LISTED once the kiosk holds the regional's offline list
            wait_for(
                lambda: panel_states(agent)[-1] in ("unknown", "not_listed", "offline"),
                10,
                "unknown or not listed",
            )
        finally:
            d.regional.signal(signal.SIGCONT)
        d.start_broker()
        wait_for(lambda: verdicts(d), 60, "verdict after the broker restart")
        wait_for(lambda: len(Outbox(state_dir(d) / "outbox.sqlite").pending()) == 0, 10)
    assert verdicts(d) == [(1, "NO_MATCH")]
    states = panel_states(agent)
    fallback = next(i for i, st in enumerate(states) if st in ("unknown", "not_listed"))
    assert "clear" not in states[:fallback]
    rep = verify_file(state_dir(d) / "audit.log", load_audit_key(d.bundle(TID) / "audit.key"))
    assert rep.ok and rep.counts["verdict"] == 1


def test_agent_sigkilled_after_accepting_a_scan_resolves_after_restart(system):
    d = system
    _, unlisted = samples(d)
    events = events_path(d)
    d.regional.signal(signal.SIGSTOP)
    try:
        agent = d.start_agent(TID, scanner=d.sim, signals="mock", display="mock")
        d.sim.send(unlisted[0])
        wait_for(
            lambda: any(e["event"] == "document" and e.get("valid") for e in read_events(events)),
            30,
            "scan accepted",
        )
        assert agent.kill() == -signal.SIGKILL
    finally:
        d.regional.signal(signal.SIGCONT)
    with Outbox(state_dir(d) / "outbox.sqlite") as ob:
        assert [e.seq for e in ob.pending()] == [1]
    assert verdicts(d) == [] or verdicts(d) == [(1, "NO_MATCH")]
    agent = d.start_agent(TID, scanner=d.sim, signals="mock", display="mock")
    starts = [e for e in read_events(events) if e["event"] == "start"]
    assert starts[-1]["pending"] == [1]  # the officer is told which verdict is pending
    wait_for(lambda: (1, "NO_MATCH") in verdicts(d), 30, "pending resolved")
    assert agent.stop() == 0
    with Outbox(state_dir(d) / "outbox.sqlite") as ob:
        assert ob.pending() == []
    rep = verify_file(state_dir(d) / "audit.log", load_audit_key(d.bundle(TID) / "audit.key"))
    assert rep.ok and rep.counts["verdict"] == 1


def test_audit_tampering_on_a_real_log_is_detected(system):
    d = system
    _, unlisted = samples(d)
    agent = Agent(agent_config(d))
    with AgentThread(agent):
        wait_for(lambda: link_up(d), 30, "broker link")
        for i, doc in enumerate(unlisted[:3], 1):
            d.sim.send(doc)
            wait_for(lambda i=i: len(verdicts(d)) == i, 30, "verdict")
    log = state_dir(d) / "audit.log"
    verify = fieldterm_argv(
        "audit", "verify", "--log", str(log), "--key", str(d.bundle(TID) / "audit.key")
    )
    assert subprocess.run(verify, capture_output=True, check=False).returncode == 0
    lines = log.read_text().splitlines(keepends=True)
    entry = json.loads(lines[-1])
    entry["outcome"] = "NO_MATCH" if entry["outcome"] != "NO_MATCH" else "POSSIBLE_MATCH"
    log.write_text("".join(lines[:-1]) + json.dumps(entry) + "\n")
    r = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "MAC mismatch" in r.stdout
    log.write_text("".join(lines[:2] + lines[3:]))  # a line removed from the middle
    r = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "chain broken" in r.stdout
