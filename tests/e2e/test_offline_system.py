"""The offline list end to end: the real regional publishes it, the real agent (its own
process, as under systemd) downloads it over a real Mosquitto with mutual TLS, answers from
it while the broker is down, and re-checks every offline answer online when it is back.

Expected answers come from ``sltd generate``'s samples of listed and unlisted documents
(independent of the code under test); 16-bit fingerprints make a false positive among the
samples a 1-in-3000 event. Every wait is for the agent's or the regional's own evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from firmware.agent.audit import load_audit_key, verify_file
from firmware.mrz import parse
from firmware.protocol.dockey import DocumentKey
from host_tools.localregion import AgentProcess
from host_tools.sltd.store import open_store
from tests.e2e.rig import acknowledge as _ack
from tests.e2e.rig import screen as _screen
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.slow

TID = "kiosk-001"
REGIONAL_ENV = {
    "FIELDTERM_OFFLINE__PUBLISH_INTERVAL": "0.5",
    "FIELDTERM_OFFLINE__FINGERPRINT_BITS": "16",
    "FIELDTERM_OFFLINE__CHUNK_SIZE": "1024",
}


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    with TestRegion(
        tmp_path_factory.mktemp("offline-e2e"), terminals=(TID,), records=3000, seed=21,
        sample_size=10,
    ) as r:  # fmt: skip
        r.provision().generate_list()
        r.start_broker()
        r.start_regional(env=REGIONAL_ENV)
        yield r


@pytest.fixture(scope="module")
def agent(region: TestRegion) -> AgentProcess:
    a = region.start_agent(TID, signals="mock", display="mock")
    a.wait_event(lambda e: e["event"] == "list", "the first offline list", 0)
    return a


def _scan(agent: AgentProcess, lines: list[str]) -> tuple[int, dict]:
    mark = agent.events.mark()
    agent.scanner.send(lines)
    return mark, _screen(agent, mark)


def _offline_answer(agent: AgentProcess, mark: int) -> dict:
    return agent.wait_event(lambda e: e["event"] == "offline", "the offline answer", mark)


def _link(agent: AgentProcess, up: bool, mark: int) -> None:
    agent.wait_event(lambda e: e["event"] == "link" and e["up"] is up, f"link up={up}", mark)


def test_outage_answers_from_the_list_and_each_is_rechecked_online(region, agent):
    installed = [e for e in agent.events.events if e["event"] == "list"][-1]
    assert installed["records"] == 3000 and installed["stale"] is False
    mark = agent.events.mark()
    region.broker.stop()
    _link(agent, False, mark)

    hit_mark, hit = _scan(agent, region.listed[0])
    assert hit["after"] == "possible_match_offline"
    off = _offline_answer(agent, hit_mark)
    assert off["outcome"] == "LISTED" and off["offline"] is True
    assert off["list_version"] == installed["list_version"]
    _ack(agent)  # latched like an online hit

    miss_mark, miss = _scan(agent, region.unlisted[0])
    assert miss["after"] == "not_listed"  # never CLEAR while offline
    off = _offline_answer(agent, miss_mark)
    assert off["outcome"] == "NOT_LISTED" and off["list_age_s"] >= 0

    region.start_broker()
    verdicts = {
        seq: agent.wait_event(
            lambda e, s=seq: e["event"] == "verdict" and e.get("seq") == s, f"scan {seq}", mark
        )
        for seq in (hit["seq"], miss["seq"])
    }
    assert verdicts[hit["seq"]]["outcome"] == "POSSIBLE_MATCH"
    assert verdicts[hit["seq"]]["offline_answer"] == "LISTED"
    assert verdicts[miss["seq"]]["outcome"] == "NO_MATCH"
    assert verdicts[miss["seq"]]["offline_answer"] == "NOT_LISTED"
    assert not any(
        e["event"] == "state" and e["after"] == "clear"
        for e in agent.events.events[mark : miss_mark + 1]
        if e.get("seq") == miss["seq"] and not e.get("late")
    )
    _ack(agent)  # the late online hit latches until acknowledged

    agent_state = region.state_dir(TID)
    rep = verify_file(agent_state / "audit.log", load_audit_key(region.bundle(TID) / "audit.key"))
    assert rep.ok
    lines = [json.loads(x) for x in (agent_state / "audit.log").read_text().splitlines()]
    offline = [x["outcome"] for x in lines if x.get("kind") == "offline"]
    assert offline == ["LISTED", "NOT_LISTED"]
    raw = (agent_state / "audit.log").read_text()
    assert region.listed[0][1][:9].rstrip("<") not in raw  # no document number


def test_a_record_removed_by_a_delta_no_longer_hits_offline(region, agent):
    gone = region.listed[1]
    dk = DocumentKey.from_mrz(parse(gone))
    before = [e for e in agent.events.events if e["event"] == "list"][-1]["list_version"]
    mark = agent.events.mark()
    with open_store(region.sltd_db) as s:
        assert s.remove([(dk.issuing_state, dk.category, dk.number)]) == 1
    newer = agent.wait_event(
        lambda e: e["event"] == "list" and e["list_version"] > before, "the delta installed", mark
    )
    assert newer["records"] == 3000 - 1 and newer["sync"]["refusals"] == {}
    region.broker.stop()
    _link(agent, False, mark)
    try:
        scan_mark, shown = _scan(agent, gone)
        assert shown["after"] == "not_listed"
        assert _offline_answer(agent, scan_mark)["list_version"] == newer["list_version"]
        _scan_mark, still = _scan(agent, region.listed[2])  # not removed: still a hit
        assert still["after"] == "possible_match_offline"
        _ack(agent)
    finally:
        region.start_broker()
