"""A full state directory (a real size-limited tmpfs, real ENOSPC): the agent shows
STORAGE_FULL instead of crashing, accepts nothing it cannot make durable, loses nothing
it accepted, and comes back by itself when space returns (issue 14)."""

from __future__ import annotations

import json

import pytest

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.agent.storage import StorageGuard
from firmware.protocol.dockey import DocumentKey
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER
from tests.agent.test_core import KEY, Clock, doc
from tests.agent.tmpfs import fill, small_tmpfs


@pytest.fixture
def full_rig(tmp_path):
    """The core over a 2 MiB tmpfs state dir (events outside it, as an observer)."""
    with small_tmpfs(tmp_path / "state") as state:
        clock = Clock()
        ids = iter(bytes([i]) * 16 for i in range(1, 100))
        q, sig = FakeQuery(), FakeSignals()
        ob = Outbox(state / "outbox.sqlite")
        audit = AuditLog(state / "audit.log", KEY)
        core = AgentCore(
            machine=TerminalStateMachine(clock), outbox=ob, audit=audit, query=q, signals=sig,
            dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER,
            events=EventLog(tmp_path / "events.jsonl"), clock=clock,
            new_query_id=lambda: next(ids),
            storage=StorageGuard(state, reserve=64 << 10, interval=2.0, clock=clock),
        )  # fmt: skip
        core.restore()
        core.on_link(True)
        core.run_once(0)
        yield core, q, sig, clock, state, tmp_path
        ob.close()
        audit.close()


def events(tmp_path, name):
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_full_card_refuses_the_scan_shows_storage_full_and_recovers(full_rig):
    core, q, sig, clock, state, tmp = full_rig
    core.on_document(doc("L898902C3"))  # accepted before the card fills up
    core.run_once(0)
    (qid, _), = q.sent  # fmt: skip
    filler = fill(state)

    core.on_document(doc("D23145890"))  # no room: refused, not a crash
    core.run_once(0)
    assert core.machine.state == "storage_full"
    assert sig.shown[-1] == "storage_full" and "clear" not in sig.shown
    assert len(q.sent) == 1  # nothing left the kiosk for the refused scan
    refused = events(tmp, "refused")
    assert [r["reason"] for r in refused] == ["storage full"]

    q.answer(qid, "NO_MATCH")  # its verdict: audited only if the log's last page had room
    core.run_once(0)
    assert core.machine.state == "storage_full"
    assert [e.query_id for e in core.outbox.pending()] == [qid]  # the row stays either way

    clock.t += 5.0
    core.run_once(0)
    assert core.machine.state == "storage_full"  # still full: no way back yet

    filler.unlink()
    clock.t += 5.0
    core.run_once(0)  # the way back: half-done deletes finished, pending queries re-sent
    assert core.machine.state == "idle"
    assert events(tmp, "storage_ok")
    for resent, _ in q.sent[1:]:
        assert resent == qid
        q.answer(qid, "NO_MATCH")
    core.run_once(0)
    assert len(core.outbox) == 0

    core.on_document(doc("D23145890"))  # and scans are accepted again
    core.run_once(0)
    assert q.sent[-1][0] != qid and core.machine.state == "querying"
    rep = verify_file(state / "audit.log", KEY)
    assert rep.ok, rep.problems
    assert rep.counts["accepted"] == 2 and rep.counts["verdict"] == 1


def test_write_that_fails_midway_leaves_no_partial_audit_line(full_rig):
    """The reserve off: the audit write itself hits ENOSPC; the chain stays whole."""
    core, q, _sig, clock, state, _tmp = full_rig
    core.storage.reserve = 0
    fill(state)
    for _ in range(3):
        core.on_document(doc())
        core.run_once(0)
        assert core.machine.state == "storage_full"
        clock.t += 1.0
    assert q.sent == []
    (state / "filler").unlink()
    clock.t += 5.0
    core.run_once(0)
    core.on_document(doc())
    core.run_once(0)
    assert len(q.sent) == 1
    rep = verify_file(state / "audit.log", KEY)
    assert rep.ok, rep.problems
