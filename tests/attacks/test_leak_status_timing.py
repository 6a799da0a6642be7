"""Attack (issue 13 part 2): the broker reads each verdict from the timing of the kiosk's
retained status. It used to be published on every screen change: a miss was followed by a
status when CLEAR returned to IDLE, a hit by silence until the acknowledgement.

End to end: real Mosquitto from the generated config, a real regional process, a real
``fieldterm agent`` process on its bundle reading a pty scanner simulator, the officer's
acknowledgement (SIGUSR1) for every hit. The broker's view is the tap: arrival time and
size of every status and response message. A classifier over that view (for each verdict
the features of :func:`features`, each with a leave-one-out fitted threshold, the best
feature taken) must do no better than chance.
A positive control runs the same classifier on the old behaviour's timing and finds it.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import signal
import time
from collections.abc import Iterator

import pytest

from tests.attacks.leak_support import BrokerTap, make_region, threshold_accuracy, wait_for
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.timeout(600)
TID = "kiosk-001"
INTERVAL = 1.0  # status_interval for the test (production: 60 s); the schedule is the point
SCANS = 40
#: Chance plus three standard deviations of a fair coin over SCANS samples, plus 0.05 for
#: taking the best of seven features: a leak scores ~1.0 (see the positive control).
CHANCE_BOUND = 0.5 + 3 * (0.25 / SCANS) ** 0.5 + 0.05


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    r = make_region(tmp_path_factory.mktemp("leak-status"), (TID,))
    try:
        r.start_regional()
        yield r
    finally:
        r.close()


def features(responses: list[float], status: list[tuple[float, int]]) -> list[list[float]]:
    """Per response, what the broker has: the delays to the first and second status
    after it, how many status messages follow within 1, 2 and 4 s, the size of the next
    one and the gap between the two status messages around the response."""
    times = [t for t, _ in status]
    out = []
    for tr in responses:
        i = bisect.bisect_right(times, tr)
        nxt = times[i] if i < len(times) else tr + 60
        second = times[i + 1] if i + 1 < len(times) else tr + 60
        prev = times[i - 1] if i > 0 else tr - 60
        size = status[i][1] if i < len(status) else 0
        counts = [bisect.bisect_right(times, tr + w) - i for w in (1.0, 2.0, 4.0)]
        out.append([nxt - tr, second - tr, *map(float, counts), float(size), nxt - prev])
    return out


def best_accuracy(rows: list[list[float]], labels: list[bool]) -> float:
    return max(threshold_accuracy([r[k] for r in rows], labels) for k in range(len(rows[0])))


def test_the_classifier_finds_the_old_leak():
    """Positive control: status messages as the old agent sent them (a miss: at the end of
    CLEAR's 1.5 s hold; a hit: at the acknowledgement, 2-4 s later) on a 60 s schedule."""
    rng = random.Random(3)
    labels = [i % 2 == 0 for i in range(SCANS)]
    responses, status, t = [], [], 0.0
    for hit in labels:
        t += 3 + rng.random()
        responses.append(t)
        status.append((t + 0.01, 1024))  # CLEAR or POSSIBLE_MATCH shown
        status.append((t + (rng.uniform(2.0, 4.0) if hit else 1.5) + 0.01, 1024))  # -> IDLE
    assert best_accuracy(features(responses, status), labels) >= 0.9


def _scan_once(agent, lines: list[str], hit: bool, rng: random.Random) -> dict:
    mark = agent.events.mark()
    agent.scanner.send(lines)
    verdict = agent.wait_event(lambda e: e["event"] == "verdict", "the verdict", mark)
    if hit:
        # the officer looks at the document before acknowledging (the scenario's timing,
        # not a wait for evidence)
        time.sleep(rng.uniform(2.0, 4.0))
        agent.signal(signal.SIGUSR1)
    agent.wait_event(
        lambda e: e["event"] == "state" and e.get("after") == "idle", "back to idle", mark
    )
    return verdict


def test_status_timing_tells_the_broker_nothing(region):
    rng = random.Random(21)
    labels = [True] * (SCANS // 2) + [False] * (SCANS // 2)
    rng.shuffle(labels)
    env = {"FIELDTERM_AGENT__STATUS_INTERVAL": str(INTERVAL)}
    with BrokerTap(region) as tap:
        agent = region.start_agent(TID, signals="mock", display="mock", env=env)
        wait_for(lambda: tap.count("status", TID) >= 2, "the first scheduled status messages")
        r0 = tap.count("r", TID)
        outcomes = []
        for i, hit in enumerate(labels):
            lines = (region.listed if hit else region.unlisted)[i % 20]
            outcomes.append(_scan_once(agent, lines, hit, rng)["outcome"])
            time.sleep(rng.uniform(0.0, 1.0))  # the next traveller steps up (scenario)
        wait_for(lambda: tap.count("r", TID) >= r0 + SCANS, "every response on the tap")
        responses = [r.t for r in tap.rows("r", TID)[r0:]]
        wait_for(  # the features look 4 s past the last response
            lambda: tap.rows("status", TID)[-1].t > responses[-1] + 4.0, "status after the end"
        )
        status = [(r.t, r.size) for r in tap.rows("status", TID)]
    # honest traffic: every scan answered, correctly
    assert outcomes == ["POSSIBLE_MATCH" if h else "NO_MATCH" for h in labels]
    assert len(responses) == SCANS
    sizes = {s for _, s in status}
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(status)]
    acc = best_accuracy(features(responses, status), labels)
    print(
        "\nstatus timing:",
        json.dumps(
            {
                "classifier_accuracy": round(acc, 3),
                "chance_bound": round(CHANCE_BOUND, 3),
                "status_messages": len(status),
                "status_sizes": sorted(sizes),
                "gap_min_s": round(min(gaps), 3),
                "gap_max_s": round(max(gaps), 3),
                "scans": SCANS,
            }
        ),
    )
    assert len(sizes) == 1  # one size
    assert acc <= CHANCE_BOUND, f"the status timing tells verdicts apart: accuracy {acc:.2f}"
