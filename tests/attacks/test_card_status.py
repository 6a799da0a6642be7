"""What the kiosk publishes about itself (the retained status) and writes for the demo
(the events file) names no document: scan numbers, query ids, the audit head, counts."""

from __future__ import annotations

from firmware.agent.audit import AuditLog
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.agent.status import StatusPublisher
from firmware.mrz import make_td3, parse
from firmware.protocol.dockey import DocumentKey
from firmware.scanner.base import ScannedDocument
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_status_and_events_hold_no_document(tmp_path):
    sent: list[bytes] = []
    status = StatusPublisher(lambda t, p, q, r: sent.append(p), "ft/v1/uto/status/k", "k")
    clock, q = Clock(), FakeQuery()
    ob, audit = Outbox(tmp_path / "outbox.sqlite"), AuditLog(tmp_path / "audit.log", bytes(32))
    core = AgentCore(
        machine=TerminalStateMachine(clock), outbox=ob, audit=audit, query=q,
        signals=FakeSignals(), dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER,
        status=status, events=EventLog(tmp_path / "events.jsonl"), clock=clock,
    )  # fmt: skip
    core.restore()
    core.on_link(True)
    numbers = ["ZQ1234567", "ZQ7654321"]
    for i, n in enumerate(numbers):
        lines = make_td3(document_number=n, surname="OKONKWO", birth_date="810203")
        core.on_document(ScannedDocument("lines", tuple(lines), parse(lines, "strict")))
        core.run_once(0)
        if i == 0:
            q.answer(q.sent[0][0], "POSSIBLE_MATCH")
        core.run_once(0)
        clock.t += 61
        core.run_once(0)
    assert sent, "a status was published"
    blob = b"".join(sent) + (tmp_path / "events.jsonl").read_bytes()
    for needle in (*numbers, "OKONKWO", "810203"):
        assert needle.encode() not in blob, needle
    ob.close()
    audit.close()
