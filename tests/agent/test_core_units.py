"""The units the agent core is composed of, each on its own contract: scan intake, the
ledger (real outbox and audit files), the dispatcher, the presenter, the status heartbeat
and the inbox. Time comes from an injected clock; fakes record what they were given."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.dispatch import QueryDispatcher
from firmware.agent.events import EventLog
from firmware.agent.heartbeat import StatusHeartbeat
from firmware.agent.inbox import EventInbox
from firmware.agent.intake import check_scan
from firmware.agent.ledger import QueryLedger
from firmware.agent.outbox import Outbox
from firmware.agent.presenter import StatePresenter
from firmware.agent.states import Transition, View
from firmware.errors import BadDataError, OperationError
from firmware.mrz import make_td3, parse
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.pending import SealedDocumentKey
from tests.agent.sealing import SEALER, opened

KEY = bytes(32)
# The ICAO 9303 part 4 TD3 specimen: UTO passport L898902C3.
SPECIMEN = DocumentKey("UTO", "P", "L898902C3")
QID1, QID2, QID3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def lines(events_path):
    return [json.loads(x) for x in events_path.read_text().splitlines()]


def audit_kinds(path):
    return [json.loads(x)["kind"] for x in path.read_text().splitlines()]


# -- intake -------------------------------------------------------------------------------
def test_check_scan_gives_the_key_of_a_valid_mrz():
    scan = check_scan(parse(make_td3(document_number="L898902C3"), "strict"), DocumentKey.from_mrz)
    assert scan.usable and scan.key == SPECIMEN and scan.reason is None


def test_check_scan_names_the_first_mrz_error():
    td3 = make_td3(document_number="L898902C3")
    td3[1] = td3[1][:9] + "0" + td3[1][10:]  # the specimen's check digit is 6
    scan = check_scan(parse(td3, "strict"), DocumentKey.from_mrz)
    assert not scan.usable and scan.key is None
    assert scan.reason == "check:document_number"


def test_check_scan_turns_a_refused_key_into_a_reason():
    mrz = parse(make_td3(document_number="L898902C3"), "strict")

    def refuse(_mrz):
        raise BadDataError("document number too long")

    def wrong_shape(_mrz):
        raise TypeError("expected an MrzResult")

    assert check_scan(mrz, refuse).reason == "dockey:BadDataError"
    assert check_scan(mrz, wrong_shape).reason == "dockey:TypeError"


# -- ledger -------------------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    audit = AuditLog(tmp_path / "audit.log", KEY)
    hashes: list[DocumentKey] = []
    led = QueryLedger(ob, audit, sealer=SEALER, wall=lambda: 1234.5)
    yield led, ob, audit, hashes, tmp_path
    ob.close()
    audit.close()


def test_ledger_accept_stores_sealed_then_audits_the_query_id_only(ledger):
    led, ob, _audit, _hashes, tmp = ledger
    entry = led.accept(QID1, SPECIMEN)
    assert (entry.seq, entry.scanned_at, entry.audit_seq) == (1, 1234.5, 0)
    assert opened(SEALER.ref(entry.sealed), QID1) == SPECIMEN  # the regional opens it
    assert ob.get(QID1) == entry and len(led) == 1
    assert led.key_of(entry) == SPECIMEN  # in memory while this process holds it
    assert led.key_for(QID1) == SPECIMEN
    last = json.loads((tmp / "audit.log").read_text().splitlines()[-1])
    assert (last["kind"], last["qid"], last["dkh"]) == ("accepted", QID1.hex(), None)
    assert b"L898902C3" not in (tmp / "audit.log").read_bytes()
    assert b"L898902C3" not in b"".join(f.read_bytes() for f in tmp.iterdir())


def test_ledger_after_a_restart_has_only_the_sealed_box(ledger):
    led, ob, audit, _hashes, _tmp = ledger
    led.accept(QID1, SPECIMEN)
    fresh = QueryLedger(ob, audit, sealer=SEALER)
    [entry] = fresh.pending()
    ref = fresh.key_of(entry)
    assert isinstance(ref, SealedDocumentKey) and opened(ref, QID1) == SPECIMEN
    assert fresh.key_for(QID1) is None  # no plain key for the offline list


def test_ledger_rescan_uses_up_a_scan_number(ledger):
    led, *_rest, tmp = ledger
    assert led.next_seq() == 1
    assert led.rescan("check:document_number") == 1
    assert led.next_seq() == 2 and len(led) == 0
    assert audit_kinds(tmp / "audit.log") == ["rescan"]


def test_ledger_settles_a_verdict_once(ledger):
    led, ob, _audit, _hashes, tmp = ledger
    led.accept(QID1, SPECIMEN)
    settled = led.settle(QID1, "NO_MATCH", "7")
    assert settled is not None and settled.seq == 1
    assert ob.get(QID1) is None
    assert led.settle(QID1, "NO_MATCH", "7") is None  # the second copy: nothing written
    assert led.settle(QID2, "NO_MATCH", "7") is None  # never accepted
    rep = verify_file(tmp / "audit.log", KEY)
    assert rep.ok and rep.counts == {"accepted": 1, "verdict": 1}


def test_ledger_audits_unknown_once_per_query(ledger):
    led, *_rest, tmp = ledger
    led.accept(QID1, SPECIMEN)
    assert led.unknown(QID1, "timeout") is True
    assert led.unknown(QID1, "link down") is False
    assert led.unknown(QID2, None) is True
    assert audit_kinds(tmp / "audit.log") == ["accepted", "unknown", "unknown"]


def test_ledger_restore_finishes_a_delete_cut_by_a_crash(ledger):
    led, ob, audit, *_rest = ledger
    led.accept(QID1, SPECIMEN)
    led.accept(QID2, DocumentKey("UTO", "P", "AB1234567"))
    # the verdict for QID2 was audited, then power was lost before the outbox delete
    audit.append("verdict", query_id=QID2, outcome="NO_MATCH")
    assert led.restore() == [(QID1, 1)]
    assert [e.query_id for e in ob.pending()] == [QID1]
    led.started(1)
    last = json.loads((led.audit.path).read_text().splitlines()[-1])
    assert (last["kind"], last["outcome"]) == ("start", "pending=1")
    assert led.head.seq == 4  # accepted, accepted, verdict, start


# -- dispatcher -----------------------------------------------------------------------------
class RecordingQuery:
    def __init__(self, fail: bool = False):
        self.sent: list[tuple[bytes, object]] = []
        self.fail = fail

    def submit(self, query_id, dk, on_verdict):
        if self.fail:
            raise OperationError("broker link down")
        self.sent.append((query_id, dk))


@pytest.fixture
def dispatch(ledger):
    led, ob, _audit, _hashes, tmp = ledger
    failed: list[bytes] = []
    clock = Clock(100.0)
    q = RecordingQuery()
    d = QueryDispatcher(
        q,
        led,
        on_verdict=lambda v: None,
        on_failed=failed.append,
        events=EventLog(tmp / "events.jsonl"),
        clock=clock,
        retry_interval=10.0,
    )
    return d, q, led, ob, failed, clock, tmp


def test_dispatcher_send_counts_the_attempt(dispatch):
    d, q, led, ob, failed, _clock, _tmp = dispatch
    led.accept(QID1, SPECIMEN)
    d.send(QID1, SPECIMEN)
    assert q.sent == [(QID1, SPECIMEN)] and d.in_flight == {QID1}
    assert ob.get(QID1).attempts == 1 and failed == []
    d.answered(QID1)
    assert d.in_flight == frozenset()


def test_dispatcher_reports_a_query_the_client_refused(dispatch):
    d, q, led, ob, failed, _clock, _tmp = dispatch
    led.accept(QID1, SPECIMEN)
    q.fail = True
    d.send(QID1, SPECIMEN)
    assert failed == [QID1] and d.in_flight == frozenset()
    assert ob.get(QID1) is not None  # still pending, to be re-sent


def test_dispatcher_retry_schedule_follows_the_clock(dispatch):
    d, _q, _led, _ob, _failed, clock, _tmp = dispatch
    assert not d.due(109.9)
    assert d.due(110.0)
    clock.t = 150.0
    d.retry(lambda qid: False)
    assert not d.due(159.0) and d.due(160.0)


def test_dispatcher_retry_skips_in_flight_and_on_screen_unless_forced(dispatch):
    d, q, led, _ob, _failed, _clock, tmp = dispatch
    for qid, number in ((QID1, "L898902C3"), (QID2, "AB1234567"), (QID3, "X1234567")):
        led.accept(qid, DocumentKey("UTO", "P", number))
    d.send(QID1, led.key_of(led.pending()[0]))  # in flight
    q.sent.clear()
    d.retry(lambda qid: qid == QID3)  # the officer waits for scan 3 on screen
    [(qid, ref)] = q.sent
    # scan 2 is off the screen (its answer was shown already): it goes as its sealed box,
    # a resend (0x53) the regional knows is late, though this process holds the plain key
    assert qid == QID2 and isinstance(ref, SealedDocumentKey)
    assert opened(ref, QID2) == DocumentKey("UTO", "P", "AB1234567")
    q.sent.clear()
    d.retry(lambda qid: qid == QID3, force=True)
    # QID1 and QID2 are in flight now; scan 3, still on screen, goes with its plain key
    assert q.sent == [(QID3, DocumentKey("UTO", "P", "X1234567"))]
    resends = [e for e in lines(tmp / "events.jsonl") if e["event"] == "resend"]
    assert [(e["seq"], e["qid"], e["late"]) for e in resends] == [
        (2, QID2.hex(), True),
        (3, QID3.hex(), False),
    ]


def test_dispatcher_reconnect_resends_what_was_in_flight(dispatch):
    d, q, led, _ob, _failed, _clock, _tmp = dispatch
    led.accept(QID1, SPECIMEN)
    d.send(QID1, SPECIMEN)
    d.reconnected(lambda qid: True)  # forced: even the query on screen goes again
    assert [s[0] for s in q.sent] == [QID1, QID1] and d.in_flight == {QID1}


# -- presenter ------------------------------------------------------------------------------
class RecordingSignals:
    def __init__(self):
        self.history: list[tuple[float, str]] = []

    def show(self, view, now):
        self.history.append((now, view.screen))

    def update(self, now):
        pass

    def acknowledged(self):
        return False

    def off(self):
        pass


def view(state: str, link_up: bool = True) -> View:
    return View(state, 0.0, None, None, False, link_up, (), ())


def test_presenter_shows_each_view_once_unless_forced(tmp_path):
    sig, clock = RecordingSignals(), Clock(5.0)
    p = StatePresenter(sig, EventLog(None), clock)
    p.render(view("idle", link_up=False))
    p.render(view("idle", link_up=False))
    clock.t = 6.0
    p.render(view("idle", link_up=False), force=True)
    clock.t = 7.0
    p.render(view("reading"))
    assert sig.history == [(5.0, "offline"), (6.0, "offline"), (7.0, "reading")]


def test_presenter_records_transitions_and_warns_on_a_possible_match(tmp_path, caplog):
    p = StatePresenter(RecordingSignals(), EventLog(tmp_path / "ev.jsonl"), Clock())
    assert p.note(None) is False
    hit = Transition(1.0, "querying", "possible_match", "verdict", seq=4, query_id=QID1)
    with caplog.at_level(logging.INFO, logger="firmware.agent.presenter"):
        assert p.note(hit, "listed") is True
        assert p.note(Transition(2.0, "possible_match", "possible_match", "late")) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["POSSIBLE MATCH on scan #4: hold the document"]
    ev = lines(tmp_path / "ev.jsonl")
    assert [(e["event"], e["after"], e["seq"], e["qid"], e["reason"]) for e in ev] == [
        ("state", "possible_match", 4, QID1.hex(), "listed"),
        ("state", "possible_match", None, None, None),
    ]


# -- heartbeat ------------------------------------------------------------------------------
class RecordingStatus:
    def __init__(self, fail: bool = False):
        self.published: list[dict] = []
        self.fail = fail

    def publish(self, info):
        if self.fail:
            raise OperationError("not connected")
        self.published.append(info)


def test_heartbeat_schedule_and_link(tmp_path):
    st, clock = RecordingStatus(), Clock(0.0)
    n = iter(range(100))
    hb = StatusHeartbeat(st, lambda: {"beat": next(n)}, clock=clock, interval=60.0)
    assert hb.due(0.0)  # the first beat is due at once
    assert hb.beat(link_up=False) is False and st.published == []
    assert not hb.due(59.0)  # the schedule restarted although nothing went out
    assert hb.beat(link_up=False, force=True) is True
    clock.t = 61.0
    assert hb.due(61.0) and hb.beat(link_up=True) is True
    assert st.published == [{"beat": 0}, {"beat": 1}]


def test_heartbeat_survives_a_failing_port(caplog):
    hb = StatusHeartbeat(RecordingStatus(fail=True), dict, clock=Clock(), interval=1.0)
    with caplog.at_level(logging.WARNING, logger="firmware.agent.heartbeat"):
        assert hb.beat(link_up=True) is False
    assert "status not published: not connected" in caplog.text
    assert StatusHeartbeat(None, dict, clock=Clock()).beat(link_up=True) is False


# -- inbox ----------------------------------------------------------------------------------
def test_inbox_hands_events_over_in_order_and_stops_at_stop():
    box, seen = EventInbox(), []
    posters = [threading.Thread(target=box.post, args=("document", i)) for i in range(3)]
    for t in posters:
        t.start()
        t.join()
    box.post("stop")
    box.post("link", True)
    assert box.drain(lambda ev: seen.append((ev.kind, ev.value)), 0.0) is False
    assert seen == [("document", 0), ("document", 1), ("document", 2)]
    assert box.drain(lambda ev: seen.append((ev.kind, ev.value)), 0.0) is True
    assert seen[-1] == ("link", True)
    assert box.drain(seen.append, 0.01) is True and len(seen) == 4  # nothing queued
