"""After a reconnect the dispatcher re-sends pending queries in rounds (+1, +3, +7, +15 s)
until the regional answers, then once more, and stops (issue 14: the one re-send at the
reconnect could reach the broker before the regional had subscribed again, and the scan
waited a whole retry_interval). Real outbox and audit files; an injected monotonic clock;
a recording query port."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from firmware.agent.audit import AuditLog
from firmware.agent.dispatch import QueryDispatcher
from firmware.agent.events import EventLog
from firmware.agent.ledger import QueryLedger
from firmware.agent.outbox import Outbox
from firmware.protocol.dockey import DocumentKey
from tests.agent.sealing import SEALER

QID1, QID2 = b"\x01" * 16, b"\x02" * 16
KEY1, KEY2 = DocumentKey("UTO", "P", "L898902C3"), DocumentKey("UTO", "P", "AB1234567")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class RecordingQuery:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []
        self.callbacks: dict[bytes, object] = {}

    def submit(self, query_id: bytes, dk: object, on_verdict: object) -> None:
        self.sent.append((self.clock.t, query_id))
        self.callbacks[query_id] = on_verdict


@pytest.fixture
def rig(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    audit = AuditLog(tmp_path / "audit.log", bytes(32))
    led = QueryLedger(ob, audit, sealer=SEALER, wall=lambda: 1234.5)
    clock = Clock(100.0)
    q = RecordingQuery(clock)
    verdicts: list[object] = []
    d = QueryDispatcher(
        q, led, on_verdict=verdicts.append, on_failed=lambda qid: None,
        events=EventLog(tmp_path / "events.jsonl"), clock=clock, retry_interval=60.0,
    )  # fmt: skip
    yield SimpleNamespace(d=d, q=q, led=led, clock=clock, verdicts=verdicts)
    ob.close()
    audit.close()


def tick(rig, until: float, step: float = 0.05) -> None:
    """The agent core's timer loop: ``due`` then ``retry``, every ``step`` s."""
    while rig.clock.t < until - 1e-9:
        rig.clock.t = round(rig.clock.t + step, 6)
        if rig.d.due(rig.clock.t):
            rig.d.retry(lambda qid: True)  # the officer waits on screen: rounds still go


def test_unanswered_rounds_at_1_3_7_15_then_stop(rig):
    rig.led.accept(QID1, KEY1)
    rig.d.send(QID1, KEY1)  # in flight when the link dropped
    rig.q.sent.clear()
    rig.d.reconnected(lambda qid: True)
    tick(rig, 170.0)  # retry_interval is 60 s: only the rounds send in this time
    times = [round(t - 100.0, 2) for t, qid in rig.q.sent if qid == QID1]
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0]  # in flight or not, each round re-sends
    assert rig.d.rounds_left == 0 and rig.d.counts["rounds"] == 4
    # then the ordinary schedule, counted from the last round
    assert not rig.d.due(174.9) and rig.d.due(175.0)


def test_the_first_answer_ends_the_rounds_after_one_catch_up(rig):
    rig.led.accept(QID1, KEY1)
    rig.led.accept(QID2, KEY2)
    rig.d.reconnected(lambda qid: True)
    tick(rig, 103.2)  # rounds at +0, +1, +3: both lost before the regional subscribed
    assert len(rig.q.sent) == 6
    answer = SimpleNamespace(query_id=QID1, outcome="NO_MATCH")
    rig.q.callbacks[QID1](answer)  # the regional is back (the client's thread)
    assert rig.verdicts == [answer]  # passed on unchanged
    rig.led.settle(QID1, "NO_MATCH", "1")
    rig.d.answered(QID1)
    tick(rig, 150.0)
    after = [(round(t - 100.0, 2), qid) for t, qid in rig.q.sent[6:]]
    # seen at the next tick (3.25), one catch-up round 0.5 s later, for what is left
    assert after == [(3.75, QID2)]
    assert rig.d.rounds_left == 0


def test_a_timeout_is_not_the_regional_and_keeps_the_rounds(rig):
    rig.led.accept(QID1, KEY1)
    rig.d.reconnected(lambda qid: True)
    tick(rig, 101.5)
    rig.q.callbacks[QID1](SimpleNamespace(query_id=QID1, outcome="TIMEOUT"))
    tick(rig, 116.0)
    assert [round(t - 100.0, 2) for t, _ in rig.q.sent] == [0.0, 1.0, 3.0, 7.0, 15.0]


def test_a_scan_after_the_reconnect_is_covered_too(rig):
    rig.d.reconnected(lambda qid: True)  # nothing pending yet
    tick(rig, 100.5)
    rig.led.accept(QID1, KEY1)
    rig.d.send(QID1, KEY1)  # may reach the broker before the regional subscribed
    tick(rig, 103.1)
    assert [round(t - 100.0, 2) for t, _ in rig.q.sent] == [0.5, 1.0, 3.0]
