"""The terminal state machine, driven with a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from firmware.agent.states import (
    CLEAR,
    IDLE,
    POSSIBLE_MATCH,
    QUERYING,
    READING,
    RESCAN,
    UNKNOWN,
    TerminalStateMachine,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sm(clock):
    m = TerminalStateMachine(clock, query_timeout=2.0, grace=1.0, result_hold=5.0,
                             unknown_hold=10.0, rescan_hold=4.0, notice_hold=30.0)  # fmt: skip
    m.link(True)
    return m


def scan(sm, seq, qid):
    assert sm.document_arrived(seq)
    return sm.query_sent(qid)


def test_clear_path_and_hold(sm, clock):
    states = []
    assert sm.document_arrived(1)
    states.append(sm.state)
    states.append(sm.query_sent(b"q1").after)
    states.append(sm.verdict(b"q1", "NO_MATCH").after)
    assert states == [READING, QUERYING, CLEAR]
    clock.advance(4.9)
    assert sm.tick() is None and sm.state == CLEAR
    clock.advance(0.1)
    assert sm.tick().after == IDLE


def test_invalid_mrz_is_rescan_and_nothing_pending(sm, clock):
    assert sm.document_arrived(1)
    t = sm.document_invalid("check:document_number")
    assert (t.after, sm.reason) == (RESCAN, "check:document_number")
    assert sm.view().pending == ()
    clock.advance(4)
    assert sm.tick().after == IDLE


@pytest.mark.parametrize("outcome", ["TIMEOUT", "ERROR", "SOMETHING_NEW"])
def test_timeout_error_or_unknown_outcome_is_never_clear(sm, outcome):
    scan(sm, 1, b"q1")
    t = sm.verdict(b"q1", outcome, final=False)
    assert t.after == UNKNOWN
    assert sm.state != CLEAR


def test_own_deadline_gives_unknown_when_no_verdict_comes(sm, clock):
    scan(sm, 1, b"q1")
    clock.advance(2.9)
    assert sm.tick() is None
    clock.advance(0.1)
    t = sm.tick()
    assert (t.after, sm.reason) == (UNKNOWN, "timeout")


def test_link_down_while_querying_is_unknown_at_once(sm):
    scan(sm, 1, b"q1")
    t = sm.link(False)
    assert (t.after, sm.reason) == (UNKNOWN, "offline")


def test_document_while_offline_goes_straight_to_unknown(sm):
    sm.link(False)
    assert sm.view().screen == "offline"
    t = scan(sm, 1, b"q1")
    assert t.after == UNKNOWN
    assert sm.view().pending == (1,)


def test_possible_match_latches_and_refuses_documents_until_ack(sm, clock):
    scan(sm, 1, b"q1")
    sm.verdict(b"q1", "POSSIBLE_MATCH")
    clock.advance(3600)
    assert sm.tick() is None and sm.state == POSSIBLE_MATCH
    assert sm.document_arrived(2) is False
    assert sm.acknowledge().after == IDLE
    assert sm.document_arrived(2) is True


def test_late_verdict_for_the_document_still_on_screen_replaces_unknown(sm, clock):
    scan(sm, 1, b"q1")
    sm.verdict(b"q1", "TIMEOUT", final=False)
    assert sm.view().pending == (1,)
    clock.advance(5)
    t = sm.verdict(b"q1", "NO_MATCH")
    assert (t.after, t.late, sm.late) == (CLEAR, True, True)
    assert sm.view().pending == ()


def test_late_clear_for_earlier_scan_is_a_notice_not_the_current_screen(sm, clock):
    scan(sm, 1, b"q1")
    sm.verdict(b"q1", "TIMEOUT", final=False)
    clock.advance(10)
    sm.tick()  # back to idle; scan 1 still pending
    assert sm.view().pending == (1,)
    scan(sm, 2, b"q2")
    t = sm.verdict(b"q1", "NO_MATCH")
    assert (t.before, t.after, t.late) == (QUERYING, QUERYING, True)
    v = sm.view()
    assert v.state == QUERYING and v.seq == 2
    assert [(n.seq, n.state) for n in v.notices] == [(1, CLEAR)]
    assert sm.verdict(b"q2", "NO_MATCH").after == CLEAR
    clock.advance(30)
    sm.tick()
    assert sm.view().notices == ()


def test_late_possible_match_never_pinned_on_current_document_then_escalates(sm, clock):
    scan(sm, 1, b"q1")
    sm.link(False)
    clock.advance(10)
    sm.tick()
    sm.link(True)
    scan(sm, 2, b"q2")
    sm.verdict(b"q2", "NO_MATCH")  # document 2 is clear
    t = sm.verdict(b"q1", "POSSIBLE_MATCH")  # the earlier one is a hit
    assert t.after == CLEAR and sm.view().seq == 2
    assert [n.sticky for n in sm.view().notices] == [True]
    clock.advance(5)
    t = sm.tick()  # when the clear screen would end, the earlier hit latches
    assert (t.after, t.seq, t.late) == (POSSIBLE_MATCH, 1, True)
    clock.advance(1000)
    assert sm.tick() is None
    assert sm.acknowledge().after == IDLE


def test_late_possible_match_while_idle_latches_at_once(sm, clock):
    scan(sm, 1, b"q1")
    sm.verdict(b"q1", "TIMEOUT", final=False)
    clock.advance(10)
    sm.tick()
    t = sm.verdict(b"q1", "POSSIBLE_MATCH")
    assert (t.after, t.seq) == (POSSIBLE_MATCH, 1)


def test_two_latched_matches_need_two_acknowledgements(sm, clock):
    for seq, q in ((1, b"q1"), (2, b"q2")):
        scan(sm, seq, q)
        sm.verdict(q, "TIMEOUT", final=False)
        clock.advance(10)
        sm.tick()
    scan(sm, 3, b"q3")
    sm.verdict(b"q3", "POSSIBLE_MATCH")
    sm.verdict(b"q1", "POSSIBLE_MATCH")
    assert sm.view().seq == 3
    assert sm.acknowledge().seq == 1 and sm.state == POSSIBLE_MATCH
    assert sm.acknowledge().after == IDLE


def test_restored_pending_are_listed_for_the_officer(sm):
    sm.restored([(b"a", 7), (b"b", 8)])
    assert sm.view().pending == (7, 8)
    sm.verdict(b"a", "NO_MATCH")
    assert sm.view().pending == (8,)


def test_duplicate_final_verdict_changes_nothing(sm):
    scan(sm, 1, b"q1")
    sm.verdict(b"q1", "NO_MATCH")
    assert sm.verdict(b"q1", "POSSIBLE_MATCH") is None
    assert sm.state == CLEAR
