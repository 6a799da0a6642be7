"""End to end, real processes (issue 14): a real kiosk agent, real Mosquitto from the
generated mTLS config, a real regional service.

- **Clock step back while a query is in flight.** The agent runs under libfaketime with
  its wall clock read from a file (``FAKETIME_TIMESTAMP_FILE``), so the test steps it
  150 s back while the scan's query is out and unanswered (no regional running). With
  wall-clock deadlines the query stayed "in flight" for the 150 s and nothing re-sent it
  (the probe measured 160 s); on the monotonic clock it times out after 2 s, is re-sent,
  and is answered within seconds of the regional's return.
- **Broker restart, the regional back later than the kiosk.** The kiosk's re-send at the
  reconnect reaches a broker where no regional is subscribed and is dropped; the
  reconnect rounds (+1, +3, +7, +15 s) get the answer soon after the regional subscribes,
  not a whole ``retry_interval`` (30 s here) later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faketime import faketime_env, libfaketime
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.timeout(240)
STEPPED, RESTARTED = "kiosk-001", "kiosk-002"
RETRY = "30"  # retry_interval: long, so only the behaviour under test can answer in time


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[Any]:
    libfaketime()  # need("faketime") before any process starts
    with TestRegion(tmp_path_factory.mktemp("recovery"), terminals=(STEPPED, RESTARTED)) as r:
        r.provision().generate_list()
        r.start_broker()
        r.start_regional()
        yield r


def stepping_env(spec: Path, workdir: Path) -> dict[str, str]:
    """libfaketime with the wall-clock offset read from ``spec`` on every call."""
    spec.write_text("+0\n")
    env = faketime_env(0, workdir)
    del env["FAKETIME"]
    env.update(FAKETIME_TIMESTAMP_FILE=str(spec), FAKETIME_NO_CACHE="1")
    return env


def is_state(after: str):
    return lambda e: e["event"] == "state" and e["after"] == after


def test_a_clock_step_back_with_a_query_in_flight_is_answered_promptly(region, tmp_path):
    spec = tmp_path / "faketime.spec"
    env = {**stepping_env(spec, tmp_path), "FIELDTERM_AGENT__RETRY_INTERVAL": "2"}
    agent = region.start_agent(STEPPED, signals="mock", display="console", env=env)
    # A first scan answered as usual: the regional's answer ends the reconnect rounds of
    # the start (0.5 s later, inside the 1.5 s CLEAR hold), so none re-sends the next one.
    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[2])
    agent.wait_event(is_state("clear"), "the first scan clear", mark)
    agent.wait_event(is_state("idle"), "the first scan's hold over", mark)
    region.stop_regionals()  # the next query goes out and nobody answers it
    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[3])
    doc = agent.wait_event(lambda e: e["event"] == "document", "the scan accepted", mark)
    assert doc["valid"]
    agent.wait_event(is_state("querying"), "the query in flight", mark)
    spec.write_text("-150\n")  # the wall clock steps 150 s back, the query still out
    region.start_regional()
    ready = time.monotonic()
    verdict = agent.wait_event(
        lambda e: e["event"] == "verdict", "the verdict after the step", mark, timeout=60
    )
    took = time.monotonic() - ready
    assert verdict["qid"] == doc["qid"] and verdict["outcome"] == "NO_MATCH"
    # the step was in effect in the agent: its events' wall times went back ~150 s
    assert doc["t"] - verdict["t"] > 100.0, (doc["t"], verdict["t"])
    # client timeout 2 s (monotonic) + retry_interval 2 s + a time hint's round trip
    assert took < 15.0, f"answered {took:.1f} s after the regional was back"
    attempts = [
        e for e in agent.events.events[mark:] if e["event"] == "attempt" and e["qid"] == doc["qid"]
    ]
    assert attempts and attempts[0]["outcome"] == "TIMEOUT"  # it did time out, on time
    agent.stop()


def test_after_a_broker_restart_the_answer_comes_once_the_regional_is_back(region, tmp_path):
    env = {"FIELDTERM_AGENT__RETRY_INTERVAL": RETRY}
    agent = region.start_agent(RESTARTED, signals="mock", display="console", env=env)
    if not region.regionals or not region.regional.running():
        region.start_regional()
    region.stop_regionals()
    assert region.broker is not None
    mark = agent.events.mark()
    region.broker.stop()
    agent.wait_event(lambda e: e["event"] == "link" and not e["up"], "the link down", mark)
    agent.scanner.send(region.unlisted[4])  # accepted offline, pending
    doc = agent.wait_event(lambda e: e["event"] == "document", "the scan accepted", mark)
    region.broker.start()
    agent.wait_event(lambda e: e["event"] == "link" and e["up"], "the link back", mark)
    up = time.monotonic()
    region.start_regional()  # subscribes only now, after the kiosk's re-send at the reconnect
    ready = time.monotonic()
    verdict = agent.wait_event(
        lambda e: e["event"] == "verdict", "the verdict after the restart", mark, timeout=60
    )
    done = time.monotonic()
    assert verdict["qid"] == doc["qid"] and verdict["outcome"] == "NO_MATCH"
    # The rounds are at most 8 s apart (+7 -> +15): well inside retry_interval (30 s).
    assert done - ready < 9.0, f"{done - ready:.1f} s after the regional was ready"
    assert done - up < 20.0
    resends = [e for e in agent.events.events[mark:] if e["event"] == "resend"]
    rounds = [e for e in resends if e.get("round")]
    assert rounds, resends
    assert len(resends) <= 6  # bounded: +0, four rounds, one catch-up
    dupes = [e for e in agent.events.events[mark:] if e["event"] == "verdict"]
    assert len(dupes) == 1  # one verdict shown, however many copies were answered
    agent.stop()
