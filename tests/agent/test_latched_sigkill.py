"""A latched POSSIBLE MATCH survives SIGKILL of the real agent (issue 14: 12 of 12 were not
shown again after a restart). The local region's real parts: Mosquitto from the
generated mTLS config, a regional process, ``fieldterm agent`` reading a pty scanner
simulator; the officer's acknowledge button is SIGUSR1, as under systemd."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.localregion import TestRegion

pytestmark = pytest.mark.timeout(240)
TID = "kiosk-001"


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    d = tmp_path_factory.mktemp("latched")
    r = TestRegion(d, terminals=(TID,), records=2000, seed=5, sample_size=4)
    with r:
        r.provision()
        r.generate_list()
        r.start_broker()
        r.start_regional()
        yield r


def state_is(state: str):
    return lambda e: e["event"] == "state" and e["after"] == state


def test_a_latched_match_is_shown_again_after_sigkill_until_acknowledged(region):
    agent: Any = region.start_agent(TID)
    mark = agent.events.mark()
    agent.scanner.send(region.listed[0])
    hit = agent.wait_event(state_is("possible_match"), "the possible match", mark)
    assert agent.kill() == -signal.SIGKILL  # the officer never pressed acknowledge

    agent = region.start_agent(TID)
    mark = agent._mark  # everything this start wrote
    start = agent.wait_event(lambda e: e["event"] == "start", "the start event", mark)
    assert start["latched"] == [hit["seq"]]
    again = agent.wait_event(lambda e: e["event"] == "relatched", "relatched", mark)
    assert (again["seq"], again["qid"]) == (hit["seq"], hit["qid"])
    shown = agent.wait_event(state_is("possible_match"), "the match shown again", mark)
    assert (shown["seq"], shown["qid"]) == (hit["seq"], hit["qid"])
    assert "POSSIBLE MATCH" in agent.logs()  # the console display of this start

    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[0])  # refused while the match is latched
    refused = agent.wait_event(lambda e: e["event"] == "refused", "the refusal", mark)
    assert refused["reason"] == "possible match not acknowledged"

    agent.signal(signal.SIGUSR1)  # the acknowledge button
    agent.wait_event(state_is("idle"), "the match released", mark)
    assert agent.kill() == -signal.SIGKILL

    agent = region.start_agent(TID)
    start = agent.wait_event(lambda e: e["event"] == "start", "the start event", agent._mark)
    assert start["latched"] == []
    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[1])  # accepted: nothing is latched any more
    clear = agent.wait_event(state_is("clear"), "the next scan answered", mark)
    assert clear["seq"] == hit["seq"] + 1  # the refused scan used no number
    relatched = [e for e in agent.events.events[agent._mark :] if e["event"] == "relatched"]
    assert relatched == []
    agent.stop()
