"""The agent core's offline verdicts (issue 12, item 4) with real signed lists in a real
OfflineStore, the recording fakes and injected clocks (monotonic and wall)."""

from __future__ import annotations

import json

import pytest

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import TerminalStateMachine
from firmware.mrz import make_td3, parse
from firmware.offline.answerer import OfflineAnswerer
from firmware.protocol.dockey import DocumentKey
from firmware.scanner.base import ScannedDocument
from tests.agent.fakes import FakeQuery, FakeSignals
from tests.agent.offline_lists import LISTED, UNLISTED, Region
from tests.agent.sealing import SEALER, opened

AUDIT_KEY = bytes(32)
T0 = 1_800_000_000.0  # wall time of the tests' lists
HOUR = 3600.0
MAX_AGE = 48 * HOUR


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def scan(d: tuple[str, str, str]) -> ScannedDocument:
    state, _, number = d
    lines = make_td3(document_number=number, issuing_state=state, nationality=state)
    return ScannedDocument("lines", tuple(lines), parse(lines, "strict"))


class Kiosk:
    """The core over a real outbox, audit log, events file and offline answerer."""

    def __init__(
        self,
        tmp_path,
        *,
        region: Region | None,
        list_age_h: float | None = 3.0,
        first_id: int = 1,
    ):
        self.tmp = tmp_path
        self.clock, self.wall = Clock(), Clock(T0)
        self.region = region
        self.answerer = None
        if region is not None:
            self.store = region.store(tmp_path / "offline")
            if list_age_h is not None:
                region.install(self.store, 3, created=T0 - list_age_h * HOUR)
            self.answerer = OfflineAnswerer(
                self.store, region.list_key, max_age=MAX_AGE, clock=self.wall
            )
        ids = iter(bytes([i]) * 16 for i in range(first_id, first_id + 99))
        self.machine = TerminalStateMachine(
            self.clock, query_timeout=2.0, grace=1.0, result_hold=5.0, unknown_hold=10.0
        )
        self.q, self.sig = FakeQuery(), FakeSignals()
        self.outbox = Outbox(tmp_path / "outbox.sqlite")
        self.audit = AuditLog(tmp_path / "audit.log", AUDIT_KEY, wall=self.wall)
        self.statuses: list[dict] = []
        status = type("S", (), {"publish": lambda _s, info: self.statuses.append(info)})()
        self.core = AgentCore(
            machine=self.machine,
            outbox=self.outbox,
            audit=self.audit,
            query=self.q,
            signals=self.sig,
            dockey_from_mrz=DocumentKey.from_mrz,
            sealer=SEALER,
            status=status,
            events=EventLog(tmp_path / "events.jsonl", self.wall),
            clock=self.clock,
            wall=self.wall,
            retry_interval=10.0,
            new_query_id=lambda: next(ids),
            offline=self.answerer,
        )
        self.core.restore()

    def link(self, up: bool) -> None:
        self.core.on_link(up)
        self.core.run_once(0)

    def scan(self, d: tuple[str, str, str]) -> bytes:
        n = len(self.q.sent)
        self.core.on_document(scan(d))
        self.core.run_once(0)
        pending = [
            e
            for e in self.outbox.pending()
            if opened(SEALER.ref(e.sealed), e.query_id) == DocumentKey(*d)
        ]
        assert pending, "the scan is in the outbox"
        assert len(self.q.sent) in (n, n + 1)
        return pending[-1].query_id

    def advance(self, dt: float) -> None:
        self.clock.t += dt
        self.core.run_once(0)

    def events(self, kind: str | None = None) -> list[dict]:
        lines = (self.tmp / "events.jsonl").read_text().splitlines()
        evs = [json.loads(x) for x in lines]
        return [e for e in evs if kind is None or e["event"] == kind]

    def audit_lines(self, kind: str) -> list[dict]:
        lines = (self.tmp / "audit.log").read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["kind"] == kind]

    def close(self) -> None:
        self.outbox.close()
        self.audit.close()
        if self.answerer is not None:
            self.answerer.close()


@pytest.fixture
def kiosk(tmp_path):
    made: list[Kiosk] = []

    def make(**kw) -> Kiosk:
        kw.setdefault("region", Region())
        k = Kiosk(tmp_path / f"k{len(made)}", **kw)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


def test_link_down_a_listed_document_is_an_offline_possible_match_at_once(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(LISTED)
    # no time passed: the offline list answered at once, not at a timeout
    assert k.machine.state == "possible_match_offline"
    assert k.sig.shown[-1] == "possible_match_offline"
    view = k.machine.view()
    assert view.offline is not None and view.offline.list_version == 3
    assert view.offline.list_age_s == pytest.approx(3 * HOUR, abs=1)
    # it stays in the outbox for the online re-check, and nothing was sent
    assert [e.query_id for e in k.outbox.pending()] == [qid] and k.q.sent == []
    [line] = k.audit_lines("offline")
    assert (line["qid"], line["outcome"], line["list_version"]) == (qid.hex(), "LISTED", "3")
    assert k.audit_lines("unknown") == [] and k.audit_lines("verdict") == []
    [ev] = k.events("offline")
    assert ev["offline"] is True and ev["outcome"] == "LISTED" and ev["list_version"] == 3
    assert ev["list_age_s"] == pytest.approx(3 * HOUR, abs=1) and ev["cause"] == "offline"
    assert verify_file(k.tmp / "audit.log", AUDIT_KEY).ok


def test_an_offline_hit_latches_like_the_online_one(kiosk):
    k = kiosk()
    k.link(False)
    k.scan(LISTED)
    k.advance(3600.0)  # no hold time ends it
    assert k.machine.state == "possible_match_offline"
    k.core.on_document(scan(UNLISTED))
    k.core.run_once(0)
    assert k.core.counts["refused"] == 1 and k.events("refused")
    k.sig.ack = True
    k.advance(0.1)
    assert k.machine.state == "idle"


def test_link_down_an_unlisted_document_is_not_listed_with_the_age_never_clear(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(UNLISTED)
    assert k.machine.state == "not_listed"
    assert "clear" not in k.sig.shown
    assert k.machine.view().offline.list_age_s == pytest.approx(3 * HOUR, abs=1)
    [line] = k.audit_lines("offline")
    assert (line["outcome"], line["list_version"]) == ("NOT_LISTED", "3")
    assert [e.query_id for e in k.outbox.pending()] == [qid]
    k.advance(9.9)
    assert k.machine.state == "not_listed"
    k.advance(0.2)  # unknown_hold: then idle (no link: the offline screen)
    assert k.machine.state == "idle" and k.sig.shown[-1] == "offline"


def test_link_up_the_offline_list_answers_only_at_the_timeout(kiosk):
    k = kiosk()
    k.link(True)
    qid = k.scan(UNLISTED)
    assert k.q.sent[-1][0] == qid and k.machine.state == "querying"
    k.advance(2.9)  # the machine's deadline is query_timeout + grace = 3 s
    assert k.machine.state == "querying" and k.audit_lines("offline") == []
    k.advance(0.2)
    assert k.machine.state == "not_listed"
    [ev] = k.events("offline")
    assert ev["cause"] == "deadline" and ev["outcome"] == "NOT_LISTED"


def test_a_client_timeout_verdict_gives_the_offline_answer_then(kiosk):
    k = kiosk()
    k.link(True)
    qid = k.scan(LISTED)
    k.advance(1.0)
    assert k.machine.state == "querying"
    k.q.answer(qid, "TIMEOUT", list_version=None)
    k.core.run_once(0)
    assert k.machine.state == "possible_match_offline"
    [ev] = k.events("offline")
    assert ev["cause"] == "verdict" and ev["outcome"] == "LISTED"


def test_the_online_answer_wins_when_it_comes_in_time(kiosk):
    k = kiosk()
    k.link(True)
    qid = k.scan(LISTED)  # listed offline, but online says no match in time
    k.q.answer(qid, "NO_MATCH")
    k.core.run_once(0)
    assert k.machine.state == "clear"
    assert k.audit_lines("offline") == [] and k.events("offline") == []
    assert k.outbox.pending() == []


def test_the_link_lost_while_querying_gives_the_offline_answer_at_once(kiosk):
    k = kiosk()
    k.link(True)
    k.scan(UNLISTED)
    k.link(False)
    assert k.machine.state == "not_listed"
    assert k.events("offline")[0]["cause"] == "offline"


def test_a_list_older_than_the_maximum_age_gives_unknown(kiosk):
    k = kiosk(list_age_h=48.5)
    k.link(False)
    qid = k.scan(LISTED)
    assert k.machine.state == "unknown"
    [ev] = k.events("offline")
    assert (ev["outcome"], ev["reason"]) == ("UNKNOWN", "stale")
    assert [a["qid"] for a in k.audit_lines("unknown")] == [qid.hex()]
    assert k.audit_lines("offline") == []
    assert k.machine.view().offline_list.usable is False


def test_the_same_list_turns_stale_as_the_wall_clock_passes_the_maximum_age(kiosk):
    k = kiosk(list_age_h=47.0)
    k.link(False)
    k.scan(UNLISTED)
    assert k.machine.state == "not_listed"
    k.advance(11.0)
    k.wall.t += 2 * HOUR  # now 49 h old
    k.scan(UNLISTED)
    assert k.machine.state == "unknown"
    assert [e["outcome"] for e in k.events("offline")] == ["NOT_LISTED", "UNKNOWN"]


def test_no_list_installed_gives_unknown(kiosk):
    k = kiosk(list_age_h=None)
    k.link(False)
    k.scan(LISTED)
    assert k.machine.state == "unknown"
    assert k.events("offline")[0]["reason"] == "none"
    assert k.machine.view().offline_list.version is None


def test_no_offline_key_gives_unknown_as_before(kiosk):
    k = kiosk(region=None)
    k.link(False)
    k.scan(LISTED)
    assert k.machine.state == "unknown"
    assert k.events("offline")[0]["reason"] == "no_key"
    assert k.core.offline.status() == {"list_version": None, "reason": "no_key"}


def test_a_list_of_another_region_is_refused_so_unknown(kiosk, tmp_path):
    mine, other = Region(), Region(name="north")
    k = kiosk(region=mine, list_age_h=None)
    # another region's list (signed by its own key) put where the kiosk's list belongs
    other_store = other.store(k.store.root)
    other.install(other_store, 5, created=T0)
    k.answerer.reload()
    k.link(False)
    k.scan(LISTED)
    assert k.machine.state == "unknown"
    assert k.events("offline")[0]["reason"] in ("signature", "region")


def test_back_online_an_offline_miss_that_is_a_hit_is_a_latched_late_notice(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(UNLISTED)
    k.advance(10.1)
    assert k.machine.state == "idle"
    k.link(True)  # re-sent at once with the same id
    assert [q for q, _ in k.q.sent] == [qid]
    k.q.answer(qid, "POSSIBLE_MATCH")
    k.core.run_once(0)
    assert k.machine.state == "possible_match" and k.machine.late
    k.advance(600.0)
    assert k.machine.state == "possible_match"  # latched until acknowledged
    [v] = k.audit_lines("verdict")
    assert (v["qid"], v["outcome"]) == (qid.hex(), "POSSIBLE_MATCH")
    [ev] = k.events("verdict")
    assert ev["offline_answer"] == "NOT_LISTED" and ev["cleared"] is False and ev["late"]
    assert k.outbox.pending() == []


def test_a_late_hit_while_another_scan_is_on_screen_is_sticky_then_latches(kiosk):
    k = kiosk()
    k.link(False)
    q1 = k.scan(UNLISTED)
    k.advance(10.1)
    k.link(True)
    q2 = k.scan(UNLISTED)  # on screen, querying
    k.q.answer(q2, "NO_MATCH")
    k.core.run_once(0)
    assert k.machine.state == "clear"
    k.q.answer(q1, "POSSIBLE_MATCH")
    k.core.run_once(0)
    [n] = k.machine.view().notices
    assert (n.state, n.sticky) == ("possible_match", True)
    k.advance(5.1)  # CLEAR's hold ends: the earlier scan's hit latches
    assert k.machine.state == "possible_match" and k.machine.current.query_id == q1


def test_back_online_an_offline_hit_cleared_online_on_screen(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(LISTED)
    assert k.machine.state == "possible_match_offline"
    k.link(True)
    k.q.answer(qid, "NO_MATCH")
    k.core.run_once(0)
    assert k.machine.state == "clear"
    view = k.machine.view()
    assert view.cleared and view.late
    [st] = [e for e in k.events("state") if e["cause"] == "cleared online"]
    assert st["before"] == "possible_match_offline" and st["after"] == "clear"
    [ev] = k.events("verdict")
    assert ev["offline_answer"] == "LISTED" and ev["cleared"] is True
    [a] = k.audit_lines("offline")
    [v] = k.audit_lines("verdict")
    assert a["seq"] < v["seq"] and v["outcome"] == "NO_MATCH" and a["qid"] == v["qid"]


def test_an_offline_hit_cleared_online_after_it_was_acknowledged_is_a_notice(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(LISTED)
    k.sig.ack = True
    k.advance(0.1)
    assert k.machine.state == "idle"
    k.link(True)
    k.q.answer(qid, "NO_MATCH")
    k.core.run_once(0)
    [n] = k.machine.view().notices
    assert (n.state, n.sticky, n.seq) == ("cleared", False, 1)
    k.advance(31.0)  # notice_hold: it fades
    assert k.machine.view().notices == ()


def test_an_offline_hit_confirmed_online_stays_latched(kiosk):
    k = kiosk()
    k.link(False)
    qid = k.scan(LISTED)
    k.link(True)
    k.q.answer(qid, "POSSIBLE_MATCH")
    k.core.run_once(0)
    assert k.machine.state == "possible_match" and k.machine.late
    assert k.sig.shown[-2:] == ["possible_match_offline", "possible_match"]


def test_status_and_idle_screen_carry_the_list_version_and_age(kiosk):
    k = kiosk(list_age_h=5.0)
    k.link(True)
    st = k.statuses[-1]["offline_list"]
    assert st["list_version"] == 3 and st["records"] >= 2001 and st["stale"] is False
    assert st["list_age_s"] == pytest.approx(5 * HOUR, abs=1)
    shown = k.machine.view().offline_list
    assert (shown.version, shown.age_h, shown.usable) == (3, 5.0, True)
    k.wall.t += 0.5 * HOUR
    k.advance(61.0)  # the idle screen's age is refreshed every minute
    assert k.machine.view().offline_list.age_h == 5.5


def test_a_new_list_installed_is_used_and_shown(kiosk):
    k = kiosk()
    k.link(False)
    k.region.install(k.store, 4, listed=(UNLISTED,), created=T0 - 60)
    k.answerer.reload()
    k.core.on_list_installed()
    k.core.run_once(0)
    assert k.machine.view().offline_list.version == 4
    [ev] = k.events("list")
    assert ev["list_version"] == 4
    k.scan(UNLISTED)  # listed in v4
    assert k.machine.state == "possible_match_offline"
    assert k.events("offline")[-1]["list_version"] == 4
