"""The retained status (issue 13 part 2): a fixed schedule and one size, so neither the
time nor the length of a status message tells the broker a verdict. Driven through the
real core (outbox, audit log, state machine) with the recording fakes and a fake clock."""

from __future__ import annotations

import json

import pytest

from firmware.agent.heartbeat import StatusHeartbeat
from firmware.agent.status import STATUS_SIZE, StatusPublisher, offline_payload
from tests.agent.offline_lists import LISTED, UNLISTED
from tests.agent.test_offline_verdicts import Kiosk

INTERVAL = 60.0


class TimedStatus:
    """Records the fake monotonic time of every status handed to the port."""

    def __init__(self, clock):
        self.clock = clock
        self.times: list[float] = []

    def publish(self, info):
        self.times.append(self.clock())


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, region=None)
    k.link(True)
    timed = TimedStatus(k.clock)
    k.core.heartbeat.status = timed
    yield k, timed
    k.close()


def _run(k: Kiosk, until: float, step: float = 0.5) -> None:
    while k.clock.t < until:
        k.advance(step)


@pytest.mark.parametrize("outcome", ["NO_MATCH", "POSSIBLE_MATCH"])
def test_a_verdict_and_its_screen_changes_publish_no_status(kiosk, outcome):
    """Hit or miss, CLEAR->IDLE or the latched match and its acknowledgement: the status
    goes out at the schedule's instants only (the scheduled times are the independent
    expectation: 0 + n x interval)."""
    k, timed = kiosk
    _run(k, 10.0)
    qid = k.scan(LISTED if outcome == "POSSIBLE_MATCH" else UNLISTED)
    k.q.answer(qid, outcome)
    k.core.run_once(0)
    assert k.machine.state == {"NO_MATCH": "clear", "POSSIBLE_MATCH": "possible_match"}[outcome]
    _run(k, 20.0)  # CLEAR's hold ends (-> IDLE); a match stays latched
    k.core.post("ack")
    _run(k, 3 * INTERVAL + 1)
    assert timed.times == [INTERVAL, 2 * INTERVAL, 3 * INTERVAL]


def test_heartbeat_phase_is_not_moved_by_a_forced_beat():
    t = {"now": 0.0}
    sent: list[float] = []
    status = type("S", (), {"publish": lambda _s, info: sent.append(t["now"])})()
    hb = StatusHeartbeat(status, dict, clock=lambda: t["now"], interval=10.0)
    for now in (0.0, 3.0, 10.0, 17.5, 20.0, 30.4):
        t["now"] = now
        if now == 17.5:
            assert hb.beat(link_up=True, force=True)  # a reconnect
        elif hb.due(now):
            assert hb.beat(link_up=True)
    assert sent == [0.0, 10.0, 17.5, 20.0, 30.4]


def test_every_status_payload_and_the_will_have_one_size():
    sent = []
    pub = StatusPublisher(lambda *a: sent.append(a[1]), "ft/v1/r/status/k", "kiosk-001")
    pub.publish({"pending": 0, "documents": 0, "audit_head": {"seq": 1, "mac": "a" * 64}})
    pub.publish(
        {
            "pending": 4096,
            "documents": 123456789,
            "audit_head": {"seq": 10**9, "mac": "f" * 64},
            "offline_list": {"list_version": 99999, "records": 10**8, "list_age_s": 1e6},
        }
    )
    sizes = {len(p) for p in sent} | {len(offline_payload("kiosk-001"))}
    assert sizes == {STATUS_SIZE}
    assert sent[0] == sent[1]  # the same bytes whatever the figures
    assert json.loads(sent[1]) == {"terminal": "kiosk-001", "state": "online"}
    assert json.loads(offline_payload("k")) == {"terminal": "k", "state": "offline"}


def test_retained_status_is_one_payload_in_every_state_and_carries_no_counts(tmp_path):
    """The real publisher as the core's status port, beating in every screen state a kiosk
    passes through (idle, querying, clear, a latched match, unknown, an offline answer and
    after the link comes back): the broker gets the same bytes at every beat, and
    the will is the same length. The figures (documents, pending, audit head) went up
    meanwhile: the expectation is the bare {terminal, state} document, written here."""
    sent: list[tuple[str, bytes]] = []
    k = Kiosk(tmp_path, region=None)
    pub = StatusPublisher(lambda t, p, q, r: sent.append((k.machine.state, p)), "t", "kiosk-9")
    k.core.heartbeat.status = pub
    k.link(True)

    def beat() -> None:
        assert k.core.heartbeat.beat(True, force=True)

    beat()  # idle
    qid = k.scan(UNLISTED)
    beat()  # querying
    k.q.answer(qid, "NO_MATCH")
    k.core.run_once(0)
    beat()  # clear
    k.advance(6.0)
    qid = k.scan(LISTED)
    k.q.answer(qid, "POSSIBLE_MATCH")
    k.core.run_once(0)
    beat()  # a latched possible match
    k.core.post("ack")
    k.advance(1.0)
    k.scan(UNLISTED)
    k.advance(3.5)  # no answer: past the query timeout and its grace
    beat()  # unknown
    k.link(False)
    k.link(True)
    beat()  # back online, the scan re-sent
    states = [s for s, _ in sent]
    assert {"idle", "querying", "clear", "possible_match", "unknown"} <= set(states), states
    assert k.core._status_info()["documents"] == 3 and k.core._status_info()["pending"] == 1
    online = {"terminal": "kiosk-9", "state": "online"}
    assert {p for _, p in sent} == {sent[0][1]}  # one payload, byte for byte
    assert json.loads(sent[0][1]) == online
    assert len(sent[0][1]) == len(offline_payload("kiosk-9")) == STATUS_SIZE
    for word in (b"pending", b"documents", b"audit", b"list", b"alarm", b'"t"', b"version"):
        assert word not in sent[0][1]
    k.close()
