"""A possible match stays latched across a restart until the officer acknowledges it
(issue 14): the core on a real outbox and audit log, restarted on the same files, with
recording fakes for the query client and the signals. The real agent process under
SIGKILL is in tests/agent/test_latched_sigkill.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import FAULT, IDLE, POSSIBLE_MATCH, TerminalStateMachine
from firmware.mrz import make_td3, parse
from firmware.protocol.dockey import DocumentKey
from firmware.scanner.base import ScannedDocument
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER

KEY = bytes(32)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def doc(number: str) -> ScannedDocument:
    lines = make_td3(document_number=number)
    return ScannedDocument("lines", tuple(lines), parse(lines, "strict"))


class Kiosk:
    """One start of the agent core on the files in ``d``; ``crash()`` drops it unclosed
    (every write it made was fsynced, as the real files are)."""

    def __init__(self, d: Path, first_id: int = 1):
        self.clock = Clock()
        self.q, self.sig = FakeQuery(), FakeSignals()
        self.outbox = Outbox(d / "outbox.sqlite")
        self.audit = AuditLog(d / "audit.log", KEY)
        ids = iter(bytes([i]) * 16 for i in range(first_id, first_id + 50))
        self.core = AgentCore(
            machine=TerminalStateMachine(self.clock), outbox=self.outbox, audit=self.audit,
            query=self.q, signals=self.sig, dockey_from_mrz=DocumentKey.from_mrz,
            sealer=SEALER, events=EventLog(d / "events.jsonl"), clock=self.clock,
            new_query_id=lambda: next(ids),
        )  # fmt: skip
        self.core.restore()
        self.core.on_link(True)
        self.core.run_once(0)

    def scan(self, number: str, outcome: str) -> bytes:
        self.core.on_document(doc(number))
        self.core.run_once(0)
        qid = self.q.sent[-1][0]
        self.q.answer(qid, outcome)
        self.core.run_once(0)
        return qid

    def ack(self) -> None:
        self.sig.ack = True
        self.core.run_once(0)

    @property
    def state(self) -> str:
        return self.core.machine.state

    def crash(self) -> None:
        self.outbox.close()
        self.audit.close()


def events(d: Path, kind: str) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
    return [e for e in rows if e["event"] == kind]


def test_an_unacknowledged_match_is_shown_again_until_acknowledged(tmp_path):
    k = Kiosk(tmp_path)
    k.scan("AB1234567", "NO_MATCH")
    k.clock.t += 10
    k.core.run_once(0)
    hit = k.scan("L898902C3", "POSSIBLE_MATCH")
    assert (k.state, k.core.machine.view().seq) == (POSSIBLE_MATCH, 2)
    k.crash()  # the officer never pressed acknowledge

    k = Kiosk(tmp_path, first_id=60)
    view = k.core.machine.view()
    assert (view.state, view.seq) == (POSSIBLE_MATCH, 2)
    assert k.sig.shown[-1] == POSSIBLE_MATCH
    assert events(tmp_path, "relatched")[-1] == {
        **events(tmp_path, "relatched")[-1], "seq": 2, "qid": hit.hex(),
    }  # fmt: skip
    assert events(tmp_path, "start")[-1]["latched"] == [2]
    k.core.on_document(doc("XY7654321"))  # a new document is refused while latched
    k.core.run_once(0)
    assert events(tmp_path, "refused")[-1]["reason"] == "possible match not acknowledged"
    k.ack()
    assert k.state == IDLE
    k.crash()

    k = Kiosk(tmp_path, first_id=120)
    assert k.state == IDLE and events(tmp_path, "start")[-1]["latched"] == []
    assert verify_file(tmp_path / "audit.log", KEY).ok
    k.crash()


def test_a_match_audited_but_never_shown_is_shown_at_the_next_start(tmp_path):
    """The crash came after the verdict line, before the screen (and before the outbox
    row went): the next start shows it, with its scan number from the outbox row."""
    k = Kiosk(tmp_path)
    k.core.on_document(doc("L898902C3"))
    k.core.run_once(0)
    qid = k.q.sent[-1][0]
    k.audit.append("verdict", query_id=qid, outcome="POSSIBLE_MATCH", list_version="7")
    k.crash()  # no ``latched`` line, outbox row still there, nothing on screen

    k = Kiosk(tmp_path, first_id=60)
    view = k.core.machine.view()
    assert (view.state, view.seq, len(k.outbox)) == (POSSIBLE_MATCH, 1, 0)
    assert k.q.sent == []  # its verdict is known: not asked again
    k.crash()


def test_several_matches_latch_one_after_another_and_an_alarm_waits_its_turn(tmp_path):
    """Scan 1 timed out (UNKNOWN, still pending); scan 2 is a match, latched; then scan 1's
    late verdict is a match too (a sticky notice). Both come back after a crash, in the
    order of their verdicts, and an alarm raised meanwhile waits for the acknowledgements."""
    k = Kiosk(tmp_path)
    late = k.scan("AB1234567", "TIMEOUT")
    k.clock.t += 20
    k.core.run_once(0)
    first = k.scan("L898902C3", "POSSIBLE_MATCH")
    k.q.answer(late, "POSSIBLE_MATCH")
    k.core.run_once(0)
    assert [(n.seq, n.sticky) for n in k.core.machine.notices] == [(1, True)]
    second = late
    k.crash()

    k = Kiosk(tmp_path, first_id=60)
    assert (k.state, k.core.machine.view().seq) == (POSSIBLE_MATCH, 2)
    k.core.raise_alarms(["audit anchor: test alarm"])
    assert k.state == POSSIBLE_MATCH  # the alarm does not hide the match
    k.ack()
    assert (k.state, k.core.machine.view().seq) == (POSSIBLE_MATCH, 1)
    k.ack()
    assert (k.state, k.core.machine.reason) == (FAULT, "audit anchor: test alarm")
    k.crash()
    acked = [
        json.loads(x)["qid"]
        for x in (tmp_path / "audit.log").read_text().splitlines()
        if '"kind":"acknowledged"' in x
    ]
    assert acked == [first.hex(), second.hex()]
