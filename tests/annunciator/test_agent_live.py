"""Real kiosk agents (``fieldterm agent`` processes with the generated bundles, a pty
scanner, the regional service with a synthetic list) and the real panel under the
MicroPython unix port, all through the generated Mosquitto with mutual TLS."""

from __future__ import annotations

import time

import pytest

from tests.annunciator.rig import LineProc, micropython, mp_env
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.slow

LANES = ("kiosk-001", "kiosk-002")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    exe = micropython()
    args = {t: ["--site", "post-1"] for t in LANES}
    region = TestRegion(
        tmp_path_factory.mktemp("agents"), terminals=LANES, terminal_args=args, records=2000
    )
    panel = None
    try:
        region.provision().generate_list()
        out = region.dir / "panel-1"
        region.provision_cmd(
            "panel", "add-annunciator", "panel-1", "--site", "post-1",
            "--lanes", ",".join(LANES), "--out", str(out),
        )  # fmt: skip
        region.start_broker()
        region.start_regional()
        agents = {tid: region.start_agent(tid) for tid in LANES}
        panel = LineProc([exe, "-m", "annunciator.unix", str(out), "0"], env=mp_env())
        panel.wait_for(r"^mqtt connected 1$", 30)
        for n, tid in enumerate(LANES, 1):
            panel.wait_for(rf"^lane {n} {tid} idle$", 10)
        yield region, agents, panel
    finally:
        if panel is not None:
            panel.stop()
        region.close()


def test_possible_match_at_kiosk_002_calls_lane_2_and_the_ack_reaches_the_agent(system):
    region, agents, panel = system
    agent = agents["kiosk-002"]
    listed = [x for x in region.listed if len(x) == 2]
    start, mark = agent.events.mark(), panel.mark()
    agent.scanner.send(listed[0])
    agent.wait_event(
        lambda e: e.get("event") == "verdict" and e.get("outcome") == "POSSIBLE_MATCH",
        "the possible match",
        start,
        timeout=30,
    )
    t_match = time.monotonic()
    t_call, _ = panel.wait_for(r"^lane 2 kiosk-002 call$", 3.0, after=mark)
    assert t_call - t_match <= 3.0
    assert not [t for _, t in panel.since(mark) if t.startswith("lane 1 ")]
    panel.send("press")
    ev = agent.wait_event(
        lambda e: e.get("event") == "supervisor", "the supervisor's ack", start, timeout=10
    )
    assert ev["panel"] == "panel-1"
    panel.wait_for(r"^lane 2 kiosk-002 acked$", 5, after=mark)
    # the officer's display (console backend, in the agent's log) says so
    deadline = time.monotonic() + 5
    while "Supervisor on the way" not in agent.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Supervisor on the way" in agent.logs()


def test_killed_agent_shows_its_lane_down(system):
    _region, agents, panel = system
    mark = panel.mark()
    agents["kiosk-001"].kill()
    t_kill = time.monotonic()
    t_down, _ = panel.wait_for(r"^lane 1 kiosk-001 down$", 7, after=mark)
    assert t_down - t_kill <= 6.0
