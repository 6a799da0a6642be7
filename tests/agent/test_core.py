"""The agent core with recording fakes: outbox/audit order, retries, no duplicate verdict."""

from __future__ import annotations

import json

import pytest

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.mrz import make_td3, parse
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.pending import SealedDocumentKey
from firmware.scanner.base import ScannedDocument
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER, opened

KEY = bytes(32)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def doc(number="L898902C3", bad=False):
    lines = make_td3(document_number=number)
    if bad:
        lines[1] = lines[1][:9] + ("0" if lines[1][9] != "0" else "1") + lines[1][10:]
    return ScannedDocument("lines", tuple(lines), parse(lines, "strict"))


@pytest.fixture
def rig(tmp_path):
    clock = Clock()
    ids = iter(bytes([i]) * 16 for i in range(1, 100))
    machine = TerminalStateMachine(clock, query_timeout=2.0, grace=1.0)
    q, sig = FakeQuery(), FakeSignals()
    ob = Outbox(tmp_path / "outbox.sqlite")
    audit = AuditLog(tmp_path / "audit.log", KEY)
    core = AgentCore(
        machine=machine, outbox=ob, audit=audit, query=q, signals=sig,
        dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER,
        events=EventLog(tmp_path / "events.jsonl"), clock=clock, retry_interval=10.0,
        new_query_id=lambda: next(ids),
    )  # fmt: skip
    core.restore()
    core.on_link(True)
    core.run_once(0)
    yield core, q, sig, clock, ob, audit, tmp_path
    ob.close()
    audit.close()


def events(tmp_path):
    return [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_clear_document_outbox_before_send_then_removed(rig):
    core, q, sig, _clock, ob, _audit, tmp = rig
    core.on_document(doc())
    core.run_once(0)
    assert len(q.sent) == 1 and len(ob) == 1  # stored, then sent
    qid, key = q.sent[0]
    assert key == DocumentKey("UTO", "P", "L898902C3")
    q.answer(qid, "NO_MATCH")
    core.run_once(0)
    assert len(ob) == 0
    assert sig.shown == ["offline", "idle", "reading", "querying", "clear"]
    kinds = [json.loads(x)["kind"] for x in (tmp / "audit.log").read_text().splitlines()]
    assert kinds == ["start", "accepted", "verdict"]
    assert b"L898902C3" not in (tmp / "audit.log").read_bytes()
    assert b"L898902C3" not in (tmp / "events.jsonl").read_bytes()


def test_bad_check_digit_is_rescan_and_nothing_sent(rig):
    core, q, sig, *_ = rig
    core.on_document(doc(bad=True))
    core.run_once(0)
    assert q.sent == [] and sig.shown[-1] == "rescan"


def test_timeout_unknown_then_retry_same_id_resolves_once(rig):
    core, q, sig, clock, ob, _audit, tmp = rig
    core.on_document(doc())
    core.run_once(0)
    qid = q.sent[0][0]
    q.answer(qid, "TIMEOUT")
    core.run_once(0)
    assert sig.shown[-1] == "unknown" and len(ob) == 1
    clock.t += 10.0
    core.run_once(0)  # retry interval passed: re-sent with the same id
    assert [s[0] for s in q.sent] == [qid, qid]
    q.answer(qid, "NO_MATCH")
    q.answer(qid, "NO_MATCH")  # the regional answered both copies
    core.run_once(0)
    assert len(ob) == 0
    assert core.counts["verdicts"] == 1 and core.counts["duplicates"] == 1
    rep = verify_file(tmp / "audit.log", KEY)
    assert rep.ok and rep.counts["verdict"] == 1 and rep.counts["unknown"] == 1
    # the unknown screen had ended (hold 10 s): the late verdict is a notice on the idle screen
    assert sig.shown[-1] == "idle"
    assert [(n.seq, n.state) for n in core.machine.view().notices] == [(1, "clear")]


def test_broker_outage_unknown_then_resent_on_reconnect(rig):
    core, q, sig, clock, _ob, _audit, _tmp = rig
    core.on_link(False)
    core.run_once(0)
    core.on_document(doc())
    core.run_once(0)
    assert q.sent == [] and sig.shown[-1] == "unknown"
    core.on_link(True)
    core.run_once(0)
    assert len(q.sent) == 1
    q.answer(q.sent[0][0], "POSSIBLE_MATCH")
    core.run_once(0)
    assert sig.shown[-1] == "possible_match"
    clock.t += 1000
    core.run_once(0)
    assert sig.shown[-1] == "possible_match"  # latched
    core.on_document(doc("X1234567"))
    core.run_once(0)
    assert len(q.sent) == 1 and core.counts["refused"] == 1
    sig.ack = True
    core.run_once(0)
    assert sig.shown[-1] == "idle"


def test_restart_resends_pending_with_same_id(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    ob.add(b"\x05" * 16, SEALER.seal(b"\x05" * 16, DocumentKey("UTO", "P", "L898902C3")), 1.0)
    ob.add(b"\x06" * 16, SEALER.seal(b"\x06" * 16, DocumentKey("UTO", "P", "AB1234567")), 1.0)
    audit = AuditLog(tmp_path / "audit.log", KEY)
    # scan 2's verdict was recorded just before the crash, its outbox row not yet removed
    audit.append("verdict", query_id=b"\x06" * 16, outcome="NO_MATCH")
    clock = Clock()
    q, sig = FakeQuery(), FakeSignals()
    core = AgentCore(
        machine=TerminalStateMachine(clock), outbox=ob, audit=audit, query=q, signals=sig,
        dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER, clock=clock,
    )  # fmt: skip
    assert core.restore() == [1]
    assert core.machine.view().pending == (1,)
    core.on_link(True)
    core.run_once(0)
    # after a restart the kiosk has only the sealed box: a resend only the regional opens
    [(qid, ref)] = q.sent
    assert qid == b"\x05" * 16 and isinstance(ref, SealedDocumentKey)
    assert opened(ref, qid) == DocumentKey("UTO", "P", "L898902C3")
    q.answer(b"\x05" * 16, "NO_MATCH")
    core.run_once(0)
    assert len(ob) == 0 and core.machine.view().pending == ()
    ob.close()
    audit.close()
