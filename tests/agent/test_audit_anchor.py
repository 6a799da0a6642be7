"""The regional's audit anchor catches a kiosk audit log that was wiped or cut between
runs, which the card alone cannot tell (issue 14). Real parts: Mosquitto from the generated
mTLS config, a regional process (it keeps each kiosk's last audit head in its audit
database), ``fieldterm agent`` processes reading a pty scanner simulator."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.localregion import TestRegion

pytestmark = pytest.mark.timeout(240)
TID = "kiosk-001"


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    d = tmp_path_factory.mktemp("anchor")
    r = TestRegion(d, terminals=(TID,), records=2000, seed=3, sample_size=12)
    with r:
        r.provision()
        r.generate_list()
        r.start_broker()
        r.start_regional()
        yield r


def scan(agent: Any, mrz: list[str]) -> dict[str, Any]:
    """One document, answered (its ``verdict`` event)."""
    mark = agent.events.mark()
    agent.scanner.send(mrz)
    return agent.wait_event(lambda e: e["event"] == "verdict", "the verdict", mark)


def alarms_since(agent: Any, mark: int) -> list[str]:
    agent.events.poll()
    return [e["message"] for e in agent.events.events[mark:] if e["event"] == "alarm"]


def wipe(state: Path, *, keep_lines: int | None = None) -> None:
    """What a card swap or a tampering technician leaves: no outbox, and the audit log
    gone (or cut to its first ``keep_lines`` lines, a chain that still verifies)."""
    for p in state.glob("outbox.sqlite*"):
        p.unlink()
    log = state / "audit.log"
    if keep_lines is None:
        log.unlink()
    else:
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:keep_lines]))


def anchor_alarm(agent: Any, mark: int) -> str:
    found = agent.wait_event(
        lambda e: e["event"] == "alarm" and "regional" in e["message"], "the anchor alarm", mark
    )
    return str(found["message"])


def test_wiped_or_cut_audit_log_raises_the_anchor_alarm(region):
    unlisted = region.unlisted
    state = region.state_dir(TID)
    agent: Any = region.start_agent(TID)
    for mrz in unlisted[:2]:
        assert scan(agent, mrz)["outcome"] == "NO_MATCH"
    agent.stop()

    # a clean restart: the regional's anchor is in the log; no alarm
    agent = region.start_agent(TID)
    mark = agent._mark
    assert scan(agent, unlisted[2])["outcome"] == "NO_MATCH"
    assert alarms_since(agent, mark) == []
    assert agent.kill() == -signal.SIGKILL

    # the whole state wiped: the new kiosk state looks fine to itself ...
    wipe(state)
    agent = region.start_agent(TID)
    mark = agent._mark
    assert alarms_since(agent, mark) == []
    # ... until the first answer brings the regional's record of the old head
    assert scan(agent, unlisted[3])["outcome"] == "NO_MATCH"
    msg = anchor_alarm(agent, mark)
    assert "log ends at seq" in msg and "cut, deleted or replaced" in msg
    agent.wait_event(
        lambda e: e["event"] == "state" and e["after"] == "fault", "FAULT on screen", mark
    )
    assert '"kind":"anchor"' in (state / "audit.log").read_text()
    region.regional.wait_health(  # the regional saw the head go back, too
        lambda h: h["counts"].get("audit_anchor_behind", 0) >= 1, "the regional's count"
    )
    for mrz in unlisted[4:7]:  # no second alarm: the regional now holds the new chain
        scan(agent, mrz)
    assert len([m for m in alarms_since(agent, mark) if "regional" in m]) == 1
    agent.stop()

    # cut to its first two lines (it still verifies) and the outbox gone
    wipe(state, keep_lines=2)
    agent = region.start_agent(TID)
    mark = agent._mark
    scan(agent, unlisted[7])
    assert "cut, deleted or replaced" in anchor_alarm(agent, mark)
    agent.stop()
