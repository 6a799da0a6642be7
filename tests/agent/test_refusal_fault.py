"""FAULT, not a dark kiosk: a refusal at start, and alarms raised at start (issue 14)."""

from __future__ import annotations

import threading

from firmware.agent.agent import Agent
from firmware.agent.audit import AuditLog
from firmware.agent.config import load_agent_config
from firmware.agent.core import AgentCore
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.protocol.dockey import DocumentKey
from firmware.signals.catalogue import LANGUAGES, catalogue
from firmware.signals.display import render_screen
from firmware.signals.patterns import PATTERNS
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.sealing import SEALER
from tests.agent.test_core import Clock
from tests.agent.test_offline_config import bundle


def test_refusal_at_start_shows_fault_with_its_reason_on_leds_and_display(tmp_path):
    """The bundle's audit.key is not hex: the agent refuses to start, and the mock panel
    and display (as configured, no fall-back) show the FAULT pattern and screen."""
    overrides = {"signals": {"backend": "mock", "display": "mock"}}
    overrides["agent"] = {"state_dir": str(tmp_path / "state")}
    cfg = load_agent_config(bundle(tmp_path), environ={}, overrides=overrides)
    agent = Agent(cfg)
    try:
        agent.start()
    except Exception as exc:
        refusal = exc
    else:
        raise AssertionError("the agent started with a bad audit key")
    assert "audit key" in str(refusal)
    agent.refuse(refusal, hold=0.2)
    signals = agent._signals
    assert signals is not None
    assert [s for _, s in signals.panel.states] == ["fault"]
    assert {ch for _, ch, on in signals.panel.history if on} == {"red", "buzzer"}
    (_, screen), = signals.display.history  # fmt: skip
    assert screen.title == "FAULT" and any("audit key" in line for line in screen.lines)
    agent.close()


def test_refusal_hold_ends_at_once_when_stopped(tmp_path):
    overrides = {"signals": {"backend": "mock", "display": "mock"}}
    cfg = load_agent_config(bundle(tmp_path), environ={}, overrides=overrides)
    agent = Agent(cfg)
    agent.request_stop()
    done = threading.Event()
    t = threading.Thread(target=lambda: (agent.refuse(RuntimeError("x"), 60.0), done.set()))
    t.start()
    assert done.wait(5.0)
    t.join(5.0)
    agent.close()


def test_alarm_at_start_is_fault_until_acknowledged_and_in_the_status(tmp_path):
    clock = Clock()
    sig = FakeSignals()
    with Outbox(tmp_path / "o.sqlite") as ob, AuditLog(tmp_path / "a.log", bytes(32)) as au:
        core = AgentCore(
            machine=TerminalStateMachine(clock), outbox=ob, audit=au, query=FakeQuery(),
            signals=sig, dockey_from_mrz=DocumentKey.from_mrz, sealer=SEALER, clock=clock,
        )  # fmt: skip
        core.restore(["outbox o.sqlite is damaged (x); put aside as o.sqlite.bad-1"])
        assert sig.shown[-1] == "fault" and core.machine.reason.startswith("outbox o.sqlite")
        assert core._status_info()["alarms"] == [core.machine.reason]
        sig.ack = True
        core.run_once(0)
        assert sig.shown[-1] == "offline"  # idle without a link
        assert core._status_info()["alarms"]  # the alarm stays reported


def test_storage_full_has_its_own_pattern_and_words_in_every_language():
    shape = PATTERNS["storage_full"].waves
    assert all(p.waves != shape for s, p in PATTERNS.items() if s != "storage_full")
    for lang in LANGUAGES:
        assert {"title.storage_full", "line.storage_full", "title.fault"} <= set(catalogue()[lang])
        s = render_screen("storage_full", lang, reason="0 bytes free")
        assert s.title == catalogue()[lang]["title.storage_full"]
        assert s.lines[0] == catalogue()[lang]["line.storage_full"]
