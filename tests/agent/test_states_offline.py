"""The state machine's offline-list rules, with a fake lookup and a fake clock."""

from __future__ import annotations

import pytest

from firmware.agent.states import (
    CLEAR,
    CLEARED,
    IDLE,
    NOT_LISTED,
    OFFLINE_MATCH,
    POSSIBLE_MATCH,
    QUERYING,
    UNKNOWN,
    OfflineResult,
    TerminalStateMachine,
)

HIT = OfflineResult(listed=True, list_version=9, list_age_s=7200.0)
MISS = OfflineResult(listed=False, list_version=9, list_age_s=7200.0)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


def machine(clock, answers):
    """``answers`` maps query id to the offline result (missing: no usable list)."""
    asked: list[bytes] = []

    def lookup(qid):
        asked.append(qid)
        return answers.get(qid)

    m = TerminalStateMachine(clock, query_timeout=2.0, grace=1.0, result_hold=5.0,
                             unknown_hold=10.0, notice_hold=30.0, offline_lookup=lookup)  # fmt: skip
    return m, asked


def test_document_while_the_link_is_down_asks_the_offline_list_at_once(clock):
    m, asked = machine(clock, {b"h": HIT, b"m": MISS})
    assert m.document_arrived(1)
    t = m.query_sent(b"h")
    assert (t.after, t.cause, m.reason) == (OFFLINE_MATCH, "offline", "offline")
    assert asked == [b"h"] and m.view().offline == HIT and m.pending == {b"h": 1}
    assert not m.document_arrived(2)  # latched like an online hit
    m.acknowledge()
    assert m.document_arrived(2)
    assert m.query_sent(b"m").after == NOT_LISTED


def test_no_usable_list_keeps_unknown(clock):
    m, asked = machine(clock, {})
    m.document_arrived(1)
    assert m.query_sent(b"x").after == UNKNOWN and asked == [b"x"]


def test_with_the_link_up_the_list_is_asked_only_at_the_deadline(clock):
    m, asked = machine(clock, {b"m": MISS})
    m.link(True)
    m.document_arrived(1)
    assert m.query_sent(b"m").after == QUERYING
    clock.t += 2.99
    assert m.tick() is None and asked == []
    clock.t += 0.01
    t = m.tick()
    assert (t.after, t.cause, m.reason) == (NOT_LISTED, "deadline", "timeout")


@pytest.mark.parametrize("outcome", ["TIMEOUT", "ERROR"])
def test_a_timeout_or_error_verdict_asks_the_list(clock, outcome):
    m, _ = machine(clock, {b"h": HIT})
    m.link(True)
    m.document_arrived(1)
    m.query_sent(b"h")
    t = m.verdict(b"h", outcome, final=False)
    assert t.after == OFFLINE_MATCH and m.reason == outcome.lower()
    assert b"h" in m.pending  # still to be re-checked online


def test_not_listed_holds_then_idle_and_is_never_clear(clock):
    m, _ = machine(clock, {b"m": MISS})
    m.document_arrived(1)
    m.query_sent(b"m")
    clock.t += 9.9
    assert m.tick() is None and m.state == NOT_LISTED
    clock.t += 0.1
    assert m.tick().after == IDLE


def test_online_answers_after_the_offline_one(clock):
    m, _ = machine(clock, {b"a": HIT, b"b": MISS, b"c": HIT})
    m.document_arrived(1)
    m.query_sent(b"a")
    m.link(True)
    t = m.verdict(b"a", "NO_MATCH")  # cleared online, on screen
    assert (t.after, t.cause, t.late) == (CLEAR, "cleared online", True)
    assert m.view().cleared and m.view().offline is None
    clock.t += 5.0
    m.tick()
    m.link(False)
    m.document_arrived(2)
    m.query_sent(b"b")
    t = m.verdict(b"b", "POSSIBLE_MATCH")  # a hit for the scan answered NOT LISTED
    assert (t.after, t.late) == (POSSIBLE_MATCH, True) and not m.view().cleared
    m.acknowledge()
    m.document_arrived(3)
    m.query_sent(b"c")
    m.acknowledge()
    m.document_arrived(4)
    m.query_sent(b"d")  # no list for d: UNKNOWN on screen
    t = m.verdict(b"c", "NO_MATCH")  # scan 3's hit cleared while scan 4 is shown
    assert t.after == UNKNOWN == t.before
    assert [(n.seq, n.state, n.sticky) for n in m.view().notices] == [(3, CLEARED, False)]


def test_a_repeated_timeout_never_replaces_an_offline_answer(clock):
    m, _ = machine(clock, {b"m": MISS})
    m.document_arrived(1)
    m.query_sent(b"m")
    assert m.verdict(b"m", "TIMEOUT", final=False) is None and m.state == NOT_LISTED


def test_the_scan_on_an_offline_screen_is_not_listed_again_as_pending_until_idle(clock):
    m, _ = machine(clock, {b"m": MISS})
    m.document_arrived(1)
    m.query_sent(b"m")
    assert m.view().pending == ()  # its own screen says it will be re-checked
    clock.t += 10.0
    m.tick()
    assert m.state == IDLE and m.view().pending == (1,)
