"""Agent wiring end to end over a real Mosquitto (mutual TLS) and a real pty scanner, with
plain-JSON stand-ins for the sealed client and the regional service."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization

from firmware.agent import agent as agent_mod
from firmware.agent.agent import Agent
from firmware.agent.audit import verify_file
from firmware.agent.config import AgentConfig, AgentSection, OfflineSection, SignalsConfig
from firmware.agent.officer import OfficerSignals
from firmware.agent.outbox import Outbox
from firmware.mrz import make_td1, make_td3
from firmware.protocol import dockey
from firmware.scanner.port import ScannerConfig
from firmware.signals import open_button, open_display, open_panel, render_screen
from host_tools.sim.scanner import ScannerSimulator
from tests.agent.offline_lists import Region
from tests.agent.sealing import SEALER
from tests.e2e import fakes
from tests.e2e.rig import AgentThread, Clock, read_events, shown, wait_for, wait_history

REGION = "e2e"
TERM = "kiosk-001"
AUDIT_KEY = bytes(range(32))


@pytest.fixture
def world(tmp_path, test_pki, mtls_broker, monkeypatch):
    monkeypatch.setattr(agent_mod, "status_topic", lambda r, t: f"ft/v1/{r}/status/{t}")
    (tmp_path / "audit.key").write_text(AUDIT_KEY.hex())
    tcert, tkey = test_pki.client(TERM)
    rcert, rkey = test_pki.client("regional")
    listed = {"UTO|P|ST0LEN123".replace("0", "O")}
    regional = fakes.FakeRegional(
        port=mtls_broker.port,
        ca=test_pki.cafile,
        cert=rcert,
        key=rkey,
        region=REGION,
        listed=listed,
    ).start()
    sim = ScannerSimulator("lines", transport="pty").start()

    def factory(cfg, will, on_link):
        return fakes.FakeQueryClient(
            port=mtls_broker.port,
            ca=test_pki.cafile,
            cert=tcert,
            key=tkey,
            terminal=TERM,
            region=REGION,
            timeout=1.5,
            will=will,
            on_link=on_link,
        )

    cfg = AgentConfig(
        terminal_id=TERM,
        region=REGION,
        language="ru",
        client=None,
        scanner=ScannerConfig(port=sim.path, framing="lines"),
        signals=SignalsConfig(backend="mock", display="mock"),
        agent=AgentSection(
            state_dir=tmp_path / "state",
            audit_key=tmp_path / "audit.key",
            mrz_mode="repair",
            events_file=tmp_path / "events.jsonl",
            result_hold=0.5,
            unknown_hold=0.5,
            rescan_hold=0.5,
            retry_interval=0.5,
        ),
        query_timeout=1.5,
    )

    def make_agent(**changes):
        clock = Clock()
        panel = open_panel("mock", None, clock)
        display = open_display("mock", clock=clock)
        button = open_button("mock", None, clock)
        sig = OfficerSignals(panel, display, button, language="ru", render=render_screen)
        a = Agent(
            dataclasses.replace(cfg, **changes),
            signals=sig,
            clock=clock,
            client_factory=factory,
            dockey=dockey,
            sealer=SEALER,
        )
        a.button = button
        return a, panel, display

    yield make_agent, sim, regional, mtls_broker, tmp_path
    sim.close()
    regional.stop()


def after(history: list[str], state: str) -> list[str]:
    """What ``history`` holds after the first ``state`` ([] if it never came)."""
    return history[history.index(state) + 1 :] if state in history else []


def outcomes(events):
    return [(e["seq"], e["outcome"]) for e in events if e["event"] == "verdict"]


def test_scans_to_signals_sequence(world):
    make_agent, sim, _regional, _broker, tmp = world
    agent, panel, display = make_agent()
    ev = tmp / "events.jsonl"
    states = ["offline", "idle"]
    with AgentThread(agent):
        wait_for(lambda: any(e["event"] == "link" and e["up"] for e in read_events(ev)))
        wait_history(lambda: shown(panel), states, what="idle once linked")
        sim.send(make_td3(document_number="L898902C3"))
        states += ["reading", "querying", "clear", "idle"]
        wait_history(lambda: shown(panel), states, what="clear, then idle")
        sim.send(make_td3(document_number="STOLEN123"))
        states += ["reading", "querying", "possible_match"]
        wait_history(lambda: shown(panel), states, what="possible match")
        sim.send(make_td1(document_number="D23145890"))  # refused while latched
        wait_for(lambda: any(e["event"] == "refused" for e in read_events(ev)), what="refused")
        agent.button.press()  # the officer presses the acknowledge button
        states += ["idle"]
        wait_history(lambda: shown(panel), states, what="acknowledged")
        sim.send(make_td1(document_number="D23145890"))
        want = [(1, "NO_MATCH"), (2, "POSSIBLE_MATCH"), (3, "NO_MATCH")]
        wait_history(lambda: outcomes(read_events(ev)), want, what="the td1 verdict")
        states += ["reading", "querying", "clear", "idle"]
        wait_history(lambda: shown(panel), states, what="td1 clear, then idle")
        bad = make_td3()
        bad[1] = bad[1][:9] + "7" + bad[1][10:]
        sim.send(bad)
        states += ["reading", "rescan", "idle"]
        wait_history(lambda: shown(panel), states, what="rescan, then idle")
    assert shown(panel) == [
        "offline",
        "idle",
        "reading",
        "querying",
        "clear",
        "idle",
        "reading",
        "querying",
        "possible_match",
        "idle",
        "reading",
        "querying",
        "clear",
        "idle",
        "reading",
        "rescan",
        "idle",
    ]
    assert panel.closed and not any(panel.levels.values()) and display.closed  # all off
    assert panel.history[-1][2] is False
    # red lit only for the possible match (pattern timing is the signals' own unit tests)
    assert [on for _, on in panel.timeline("red")][:1] == [True]
    assert outcomes(read_events(tmp / "events.jsonl")) == [
        (1, "NO_MATCH"),
        (2, "POSSIBLE_MATCH"),
        (3, "NO_MATCH"),
    ]
    screens = [sc for _, sc in display.history]
    assert {sc.language for sc in screens} == {"ru"}
    assert "possible_match" in display.states and all(sc.title for sc in screens)
    rep = verify_file(tmp / "state" / "audit.log", AUDIT_KEY)
    assert rep.ok and rep.counts["verdict"] == 3 and rep.counts["rescan"] == 1


def test_broker_killed_mid_query_outbox_delivers_once(world):
    make_agent, sim, regional, broker, tmp = world
    agent, panel, _display = make_agent()
    with AgentThread(agent):
        ev = tmp / "events.jsonl"
        wait_for(lambda: any(e["event"] == "link" and e["up"] for e in read_events(ev)))
        regional.hold.clear()  # the regional is slow: the query is in flight
        sim.send(make_td3(document_number="L898902C3"))
        wait_for(lambda: "querying" in shown(panel), what="querying")
        broker.stop(kill=True)
        wait_for(
            lambda: {"unknown", "offline"} & set(after(shown(panel), "querying")),
            what="unknown or offline after querying",
        )
        assert "clear" not in shown(panel)
        regional.hold.set()
        broker.start()
        wait_for(lambda: outcomes(read_events(ev)), timeout=30, what="verdict after restart")
        wait_for(lambda: len(regional.answered) >= 1)
    events = read_events(tmp / "events.jsonl")
    assert outcomes(events) == [(1, "NO_MATCH")]  # exactly one verdict recorded
    assert "unknown" in shown(panel)
    rep = verify_file(tmp / "state" / "audit.log", AUDIT_KEY)
    assert rep.ok and rep.counts["verdict"] == 1
    with Outbox(tmp / "state" / "outbox.sqlite") as ob:
        assert ob.pending() == []
    lines = [json.loads(x) for x in (tmp / "state" / "audit.log").read_text().splitlines()]
    assert [x["kind"] for x in lines if x["kind"] != "start"][:2] == ["accepted", "unknown"]


def offline_bundle(tmp, region):
    """The offline-list key and the regional's signing key, as a bundle holds them."""
    (tmp / "offline-list.key").write_text(region.list_key.hex())
    (tmp / "regional-sign.pub").write_bytes(
        region.sign_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return OfflineSection(tmp / "offline-list.key", 48 * 3600.0, tmp / "regional-sign.pub")


class RecordingListSync:
    """Records how the agent drives the offline-list download; its signature is the real
    :class:`firmware.offline.sync.ListSync`'s (test_the_recording_list_sync_keeps_...)."""

    made: ClassVar[list[RecordingListSync]] = []

    def __init__(
        self,
        link,
        store,
        *,
        region=None,
        on_installed=None,
        on_progress=None,
        on_refused=None,
        window=8,
        rerequest_after=60.0,
        clock=time.time,
    ):
        self.link, self.store, self.on_installed = link, store, on_installed
        self.calls: list[str] = []
        RecordingListSync.made.append(self)

    def start(self):
        self.calls.append("start")
        return self

    def close(self):
        self.calls.append("close")

    def status(self):
        return {"held_version": self.store.held_version(), "refusals": {}}


def test_the_recording_list_sync_keeps_the_real_interface():
    import inspect  # noqa: PLC0415

    from firmware.offline.sync import ListSync  # noqa: PLC0415

    def shape(fn):  # names, kinds and defaults; annotations aside
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(RecordingListSync) == shape(ListSync)
    for name in ("start", "close", "status"):
        assert shape(getattr(RecordingListSync, name)) == shape(getattr(ListSync, name)), name


def test_the_list_download_is_wired_to_the_client_and_the_answerer(world, monkeypatch):
    """With ``firmware.offline.sync`` present the agent creates the download over the
    client's link and its store, starts it with the client, closes it at shutdown, and an
    installed list is mapped and shown on the idle screen (a ``list`` event)."""
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    mod = types.ModuleType("firmware.offline.sync")
    mod.ListSync = RecordingListSync  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "firmware.offline.sync", mod)
    # the stand-in client shares itself as the link (the real one shares its MqttLink)
    monkeypatch.setattr(fakes.FakeQueryClient, "link", property(lambda c: c), raising=False)
    RecordingListSync.made.clear()
    make_agent, _sim, _regional, _broker, tmp = world
    region = Region(name=REGION)
    agent, _panel, display = make_agent(offline=offline_bundle(tmp, region))
    ev = tmp / "events.jsonl"
    with AgentThread(agent):
        wait_for(lambda: any(e["event"] == "link" and e["up"] for e in read_events(ev)))
        [sync] = RecordingListSync.made
        assert sync.link is agent.client.link and sync.store is agent.offline.store
        assert sync.calls == ["start"]
        region.install(sync.store, 8, created=time.time() - 1800)
        sync.on_installed()  # from the download's own thread, as the real one does
        wait_for(lambda: any(e["event"] == "list" for e in read_events(ev)), what="list")
        [lst] = [e for e in read_events(ev) if e["event"] == "list"]
        assert lst["list_version"] == 8 and lst["stale"] is False
        assert lst["sync"] == {"held_version": 8, "refusals": {}}
        wait_for(
            lambda: "Офлайн-список, создан 0.5 ч назад" in display.history[-1][1].lines,
            what="the idle screen names the list",
        )
    assert sync.calls == ["start", "close"]


def test_broker_down_offline_answers_then_each_rechecked_online(world):
    """Issue 12 item 4 over a real broker: with the broker stopped, a document listed in
    the offline list (and online) is POSSIBLE MATCH (offline), one listed offline only is
    too (a false alarm the online answer clears), an unlisted one is NOT LISTED; with the
    broker back each is re-checked online, and the screen, events and audit show it."""
    make_agent, sim, _regional, broker, tmp = world
    region = Region(name=REGION)
    offline = offline_bundle(tmp, region)
    both, offline_only, unlisted = "STOLEN123".replace("0", "O"), "D23145890", "L898902C3"
    region.install(
        region.store(tmp / "state" / "offline"),
        3,
        listed=(("UTO", "P", both), ("UTO", "P", offline_only)),
        unlisted=(("UTO", "P", unlisted),),
        created=time.time() - 2 * 3600,
    )
    agent, panel, display = make_agent(offline=offline)
    ev = tmp / "events.jsonl"
    with AgentThread(agent):
        wait_for(lambda: any(e["event"] == "link" and e["up"] for e in read_events(ev)))
        broker.stop(kill=True)
        wait_for(lambda: any(e["event"] == "link" and not e["up"] for e in read_events(ev)))
        for number in (both, offline_only):
            n = len(shown(panel))
            sim.send(make_td3(document_number=number))
            wait_for(lambda n=n: "possible_match_offline" in shown(panel)[n:], what="offline hit")
            agent.button.press()
            wait_for(lambda n=n: shown(panel)[-1] == "offline", what="acknowledged")
        sim.send(make_td3(document_number=unlisted))
        wait_for(lambda: "not_listed" in shown(panel), what="not listed")
        offline_events = [e for e in read_events(ev) if e["event"] == "offline"]
        assert [(e["seq"], e["outcome"], e["list_version"]) for e in offline_events] == [
            (1, "LISTED", 3),
            (2, "LISTED", 3),
            (3, "NOT_LISTED", 3),
        ]
        assert all(7000 < e["list_age_s"] < 7400 for e in offline_events)
        broker.start()
        want = [(1, "POSSIBLE_MATCH"), (2, "NO_MATCH"), (3, "NO_MATCH")]
        wait_for(lambda: sorted(outcomes(read_events(ev))) == want, timeout=30, what="re-checks")
        wait_for(lambda: shown(panel)[-1] == "possible_match", what="the late hit latched")
    verdicts = {e["seq"]: e for e in read_events(ev) if e["event"] == "verdict"}
    assert verdicts[1]["offline_answer"] == "LISTED" and not verdicts[1]["cleared"]
    assert verdicts[2]["offline_answer"] == "LISTED" and verdicts[2]["cleared"]
    assert verdicts[3]["offline_answer"] == "NOT_LISTED" and not verdicts[3]["cleared"]
    assert "clear" not in shown(panel)[: shown(panel).index("not_listed") + 1]
    titles = [sc.title for _, sc in display.history]
    assert "ВОЗМОЖНОЕ СОВПАДЕНИЕ (офлайн-список)" in titles
    assert "НЕТ В СПИСКЕ (офлайн-список)" in titles
    lines = [json.loads(x) for x in (tmp / "state" / "audit.log").read_text().splitlines()]
    offline_lines = [(x["outcome"], x["list_version"]) for x in lines if x["kind"] == "offline"]
    assert offline_lines == [("LISTED", "3"), ("LISTED", "3"), ("NOT_LISTED", "3")]
    rep = verify_file(tmp / "state" / "audit.log", AUDIT_KEY)
    assert rep.ok and rep.counts["verdict"] == 3 and rep.counts["offline"] == 3
    with Outbox(tmp / "state" / "outbox.sqlite") as ob:
        assert ob.pending() == []
