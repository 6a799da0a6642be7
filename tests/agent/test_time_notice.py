"""The agent core and the clock notice: the query client's adopted offset reaches the
officer's view (and the events file) from any thread; a small offset shows nothing."""

from __future__ import annotations

import json
import threading
from typing import Any

from firmware.agent.audit import AuditLog
from firmware.agent.core import CLOCK_NOTICE, AgentCore
from firmware.agent.events import EventLog
from firmware.agent.officer import view_details
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.protocol.dockey import DocumentKey
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER


class ViewSignals(FakeSignals):
    def show(self, view: Any, now: float) -> None:
        super().show(view, now)
        self.view = view


def test_offset_from_another_thread_becomes_the_clock_notice_and_an_event(tmp_path):
    clock = [0.0]
    sig = ViewSignals()
    ob, audit = Outbox(tmp_path / "outbox.sqlite"), AuditLog(tmp_path / "audit.log", bytes(32))
    core = AgentCore(
        machine=TerminalStateMachine(lambda: clock[0]), outbox=ob, audit=audit,
        query=FakeQuery(), signals=sig, dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER,
        events=EventLog(tmp_path / "events.jsonl"), clock=lambda: clock[0],
    )  # fmt: skip
    try:
        core.restore()
        t = threading.Thread(target=core.on_clock, args=(30 * 86400.0,))
        t.start()
        t.join()
        core.run_once(0)
        assert sig.view.clock_offset_s == 30 * 86400.0
        assert view_details(sig.view)["clock_offset_s"] == 30 * 86400.0
        core.on_clock(CLOCK_NOTICE / 2)  # the clock was set right meanwhile: notice off
        core.run_once(0)
        assert sig.view.clock_offset_s is None
        assert "clock_offset_s" not in view_details(sig.view)
        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        clocks = [e for e in map(json.loads, lines) if e["event"] == "clock"]
        assert [(e["offset_s"], e["notice"]) for e in clocks] == [
            (30 * 86400.0, True),
            (CLOCK_NOTICE / 2, False),
        ]
    finally:
        ob.close()
        audit.close()
