"""The offline list through the real agent process, on one shared region: a real Mosquitto
with mutual TLS, the real regional publishing its list, and the agent as under systemd.

- Scans answered offline, then the agent killed with SIGKILL and restarted: an offline hit
  whose record left the store after the kiosk's list was built is "cleared online" (on
  screen, in the audit log and in the events); an offline miss whose record joined the
  store is a latched late POSSIBLE MATCH and a hit alert at the alert desk.
- A rollback, another region's list, a wrong signature and a tampered chunk, published on
  the region's list topics with the regional's own broker identity, are each refused with
  the reason in a ``list_refused`` event and the status, and the old list still answers.
- A download killed with SIGKILL half way resumes after the restart with only the missing
  chunks, and until it is complete the old list answers (never a half list).
- A list whose manifest (signed with the regional's key) says it was built 49 hours ago
  gives UNKNOWN (``stale``) through the agent: the default maximum age is 48 hours.

Lists other than the regional's are built by the server's builder from the region's own
store hashes, signed with the region's key (``regional-sign.key``) unless the test is of a
wrong key. Expected answers come from ``sltd generate``'s listed samples; 16-bit
fingerprints make a false positive among them a 1-in-65 536 event. Each test has its own
kiosk (terminal), stopped at its end, so the lists one installs do not disturb another.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.agent.audit import load_audit_key, verify_file
from firmware.mrz import parse
from firmware.offline.listkey import key_id, list_hash, load_list_key
from firmware.protocol import topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.keys import load_ed25519_private
from host_tools.localregion import AgentProcess
from host_tools.localregion.processes import wait_for_evidence
from host_tools.offline.builder import Built, build_full
from host_tools.offline.config import OfflineBuildConfig
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import open_store
from tests.e2e.rig import acknowledge as _ack
from tests.e2e.rig import screen as _screen
from tests.offline.regionlist import RegionalLink, region_keys
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.slow

RESTART, REFUSALS, DOWNLOAD = "kiosk-001", "kiosk-002", "kiosk-003"
REGIONAL_ENV = {
    "FIELDTERM_OFFLINE__PUBLISH_INTERVAL": "0.5",
    "FIELDTERM_OFFLINE__FINGERPRINT_BITS": "16",
    "FIELDTERM_OFFLINE__CHUNK_SIZE": "1024",
    "FIELDTERM_REGIONAL__REFRESH_INTERVAL": "0.5",
}
AGENT_ENV = {"FIELDTERM_LOG_LEVEL": "INFO"}
CHUNK = 512  # the test's own lists: 14 chunks of 3000 records at 16 bits
HOUR = 3600.0


class Lists:
    """Lists signed as the regional signs them, published with its broker identity."""

    def __init__(self, region: TestRegion):
        cfg = OfflineBuildConfig.load(region.regional_toml)
        self.region = region.region
        self.sign_key = load_ed25519_private(cfg.sign_key)
        self.list_key = load_list_key(cfg.list_key)
        self.link = RegionalLink(region)
        self._region = region

    def build(
        self,
        version: int,
        *,
        without: tuple[list[str], ...] = (),
        created: float | None = None,
        region: str | None = None,
        sign_key: Ed25519PrivateKey | None = None,
    ) -> Built:
        """A full list of the region's store now, less the documents ``without``."""
        _, keys = region_keys(self._region)
        gone = np.array([self.hash(lines) for lines in without], dtype=np.uint64)
        keys = np.setdiff1d(keys, gone)
        return build_full(
            keys,
            region=region or self.region,
            version=version,
            sign_key=sign_key or self.sign_key,
            key_id=key_id(self.list_key),
            bits=16,
            chunk_size=CHUNK,
            created=time.time() if created is None else created,
        )

    def hash(self, lines: list[str]) -> int:
        return list_hash(self.list_key, DocumentKey.from_mrz(parse(lines)))

    def live_manifest(self, built: Built) -> None:
        """The manifest to the kiosks listening now, not retained (the region's retained
        manifest stays the regional's own)."""
        topic = topics.list_manifest_topic(self.region, "full")
        info = self.link.link.publish(topic, built.manifest_bytes, retain=False)
        info.wait_for_publish(20.0)
        assert info.is_published()

    def close(self) -> None:
        self.link.close()


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    with TestRegion(
        tmp_path_factory.mktemp("offline-agent"), terminals=(RESTART, REFUSALS, DOWNLOAD),
        records=3000, seed=33, sample_size=10,
    ) as r:  # fmt: skip
        r.provision(desk=True).generate_list()
        r.start_broker()
        r.start_regional(env=REGIONAL_ENV)
        r.start_desk()
        yield r


@pytest.fixture(scope="module")
def lists(region: TestRegion) -> Iterator[Lists]:
    ls = Lists(region)
    yield ls
    ls.close()


def _published(region: TestRegion) -> int:
    """The version the regional published last (once it has published one)."""
    h = region.regional.wait_health(
        lambda h: (h.get("offline_list") or {}).get("published_at") is not None,
        "the regional's list published",
    )
    return int(h["offline_list"]["version"])


def _kiosk(region: TestRegion, tid: str) -> tuple[AgentProcess, int]:
    """The agent of ``tid`` and the version it holds, once that is the regional's latest."""
    agent = region.start_agent(tid, signals="mock", display="console", env=AGENT_ENV)
    ev = agent.wait_event(
        lambda e: e["event"] == "list" and e["list_version"] == _published(region),
        "the regional's latest list",
        0,
    )
    return agent, int(ev["list_version"])


def _offline_scan(agent: AgentProcess, lines: list[str]) -> tuple[dict, dict]:
    """Scan with the link down: (the state shown, the ``offline`` event)."""
    mark = agent.events.mark()
    agent.scanner.send(lines)
    shown = _screen(agent, mark)
    off = agent.wait_event(lambda e: e["event"] == "offline", "the offline answer", mark)
    return shown, off


def _link(agent: AgentProcess, up: bool, mark: int) -> None:
    agent.wait_event(lambda e: e["event"] == "link" and e["up"] is up, f"link up={up}", mark)


def _broker_down(region: TestRegion, agent: AgentProcess) -> None:
    assert region.broker is not None
    mark = agent.events.mark()
    region.broker.stop()
    _link(agent, False, mark)


def _broker_up(region: TestRegion, agent: AgentProcess) -> None:
    mark = agent.events.mark()
    region.start_broker()
    _link(agent, True, mark)


def _back_online(region: TestRegion, agent: AgentProcess, seq: int) -> dict:
    """The broker back: scan ``seq`` is re-checked online; a hit (the samples are listed)
    latches as a late POSSIBLE MATCH, which the officer acknowledges. Its verdict event."""
    mark = agent.events.mark()
    _broker_up(region, agent)
    verdict = agent.wait_event(
        lambda e: e["event"] == "verdict" and e.get("seq") == seq, f"scan {seq} online", mark
    )
    if verdict["outcome"] == "POSSIBLE_MATCH":
        agent.wait_event(
            lambda e: e["event"] == "state" and e["after"] == "possible_match" and e["late"],
            "the late hit latched",
            mark,
        )
        _ack(agent)
    return verdict


def test_offline_answers_are_judged_online_after_a_sigkill_and_restart(region, lists):
    """An offline hit whose record left the store is cleared online; an offline miss whose
    record joined the store is a latched late hit and an alert at the desk."""
    agent, _ = _kiosk(region, RESTART)
    gone, added = region.listed[0], region.unlisted[0]
    gk, ak = (DocumentKey.from_mrz(parse(x)) for x in (gone, added))
    _broker_down(region, agent)
    before = region.regional.health()["list_version"]
    with open_store(region.sltd_db) as s:  # after the kiosk's list was built
        assert s.remove([(gk.issuing_state, gk.category, gk.number)]) == 1
        record = SltdRecord(
            ak.issuing_state, ak.category, ak.number, Status.STOLEN, ak.issuing_state,
            dt.date(2026, 11, 30), "E2E-RESTART-1",
        )  # fmt: skip
        assert s.upsert([record]) == 1
    region.regional.wait_health(
        lambda h: h["list_version"] != before, "the regional's index with both changes"
    )
    hit, off = _offline_scan(agent, gone)  # the kiosk's list still has it
    assert hit["after"] == "possible_match_offline" and off["outcome"] == "LISTED"
    _ack(agent)
    miss, off = _offline_scan(agent, added)  # and does not have this one yet
    assert miss["after"] == "not_listed" and off["outcome"] == "NOT_LISTED"

    agent.kill()  # SIGKILL with the offline miss on screen
    mark = agent.events.mark()
    agent = region.start_agent(RESTART, signals="mock", display="console", link=False)
    start = agent.wait_event(lambda e: e["event"] == "start", "the restart", mark)
    assert start["pending"] == start["answered_offline"] == [hit["seq"], miss["seq"]]
    log_at = agent.log.stat().st_size

    region.start_broker()
    v = {
        x["seq"]: agent.wait_event(
            lambda e, s=x["seq"]: e["event"] == "verdict" and e.get("seq") == s,
            f"scan {x['seq']} online",
            mark,
        )
        for x in (hit, miss)
    }
    assert (v[hit["seq"]]["outcome"], v[hit["seq"]]["qid"]) == ("NO_MATCH", hit["qid"])
    assert v[hit["seq"]]["offline_answer"] == "LISTED" and v[hit["seq"]]["cleared"] is True
    assert (v[miss["seq"]]["outcome"], v[miss["seq"]]["qid"]) == ("POSSIBLE_MATCH", miss["qid"])
    assert v[miss["seq"]]["offline_answer"] == "NOT_LISTED" and not v[miss["seq"]]["cleared"]
    cleared = agent.wait_event(
        lambda e: e["event"] == "state" and e["cause"] == "cleared online", "cleared online", mark
    )
    assert cleared["seq"] == hit["seq"] and cleared["late"] is True
    latched = agent.wait_event(
        lambda e: e["event"] == "state" and e["after"] == "possible_match", "the late hit", mark
    )
    assert latched["seq"] == miss["seq"] and latched["late"] is True
    assert not any(  # the offline hit is never shown as a plain CLEAR
        e["event"] == "state" and e["after"] == "clear" and e.get("seq") == hit["seq"]
        for e in agent.events.events[mark:]
    )

    def screen_says_cleared() -> bool:
        with agent.log.open("rb") as fh:
            fh.seek(log_at)
            return "cleared online" in fh.read().decode(errors="replace")

    wait_for_evidence(screen_says_cleared, "the screen's cleared-online notice", proc=agent.proc)
    assert region.desk is not None
    alerts = wait_for_evidence(
        lambda: [a for a in region.desk.alerts() if a.get("query_id") == miss["qid"]],
        "the late hit at the alert desk",
        timeout=30.0,
    )
    assert alerts[0]["terminal"] == RESTART and alerts[0]["reference"] == "E2E-RESTART-1"
    assert not [a for a in region.desk.alerts() if a.get("query_id") == hit["qid"]]

    state = region.state_dir(RESTART)
    rep = verify_file(state / "audit.log", load_audit_key(region.bundle(RESTART) / "audit.key"))
    assert rep.ok
    lines = [json.loads(x) for x in (state / "audit.log").read_text().splitlines()]
    for x, offline, online in ((hit, "LISTED", "NO_MATCH"), (miss, "NOT_LISTED", "POSSIBLE_MATCH")):
        mine = [(y["kind"], y["outcome"]) for y in lines if y["qid"] == x["qid"]]
        # a possible match is followed by its ``latched`` line, and the officer's release
        # of an offline hit is audited (issue 14: both latch across restarts until
        # acknowledged)
        latched = [("latched", f"scan={x['seq']}")] if online == "POSSIBLE_MATCH" else []
        acked = [("acknowledged", None)] if offline == "LISTED" else []
        assert mine == [
            ("accepted", None), ("offline", offline), *acked, ("verdict", online), *latched,
        ]  # fmt: skip
    _ack(agent)
    agent.stop()


def _refused(agent: AgentProcess, reason: str, mark: int) -> dict:
    return agent.wait_event(
        lambda e: e["event"] == "list_refused" and e["reason"] == reason, f"refusal {reason}", mark
    )


def test_bad_lists_are_refused_with_the_reason_and_the_old_list_answers(region, lists):
    agent, held = _kiosk(region, REFUSALS)
    probe = region.listed[4]
    bad = {
        "rollback": lists.build(held - 1),
        "region": lists.build(held + 10, region="elsewhere"),
        "signature": lists.build(held + 20, sign_key=Ed25519PrivateKey.generate()),
    }
    for reason, built in bad.items():
        mark = agent.events.mark()
        lists.live_manifest(built)
        ev = _refused(agent, reason, mark)
        assert ev["offline_list"]["list_version"] == held
        assert ev["offline_list"]["sync"]["refusals"][reason] == 1

    # A well-signed newer list whose chunk 2 is not what its manifest says.
    tampered = lists.build(held + 30, without=(probe,))
    m = tampered.manifest
    for i in range(len(m.chunks)):
        s, e = m.chunk_span(i)
        data = tampered.payload[s:e]
        if i == 2:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        lists.link.chunk(tampered, i, data)
    mark = agent.events.mark()
    lists.live_manifest(tampered)
    ev = _refused(agent, "chunk", mark)
    assert str(m.version) in ev["message"] and "chunk 2" in ev["message"]
    assert ev["offline_list"]["list_version"] == held
    assert ev["offline_list"]["sync"]["downloading"] == m.version  # waiting for a good chunk2
    assert sorted(ev["offline_list"]["sync"]["refusals"]) == [
        "chunk", "region", "rollback", "signature"
    ]  # fmt: skip

    _broker_down(region, agent)
    shown, off = _offline_scan(agent, probe)  # the tampered list does not have it
    assert shown["after"] == "possible_match_offline"
    assert (off["outcome"], off["list_version"]) == ("LISTED", held)
    _ack(agent)
    assert _back_online(region, agent, shown["seq"])["outcome"] == "POSSIBLE_MATCH"
    for i in range(len(m.chunks)):  # the region's broker keeps no bad chunk
        lists.link.put(topics.list_chunk_topic(region.region, "full", m.version, i), b"")
    agent.stop()


def _chunk_files(state: Path, version: int) -> list[str]:
    d = state / "offline" / "incoming" / f"full-v{version}" / "chunks"
    return sorted(p.name for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_a_download_killed_half_way_resumes_and_never_answers_from_half_a_list(region, lists):
    agent, held = _kiosk(region, DOWNLOAD)
    state = region.state_dir(DOWNLOAD)
    probe = region.listed[3]
    new = lists.build(held + 100, without=(probe,))  # the new list no longer has it
    m = new.manifest
    n = len(m.chunks)
    withheld = tuple(range(n - 4, n))
    assert n >= 10
    for i in range(n):
        if i not in withheld:
            lists.link.chunk(new, i)
    lists.link.manifest("full", new.manifest_bytes)  # retained: found again after the restart
    wait_for_evidence(
        lambda: len(_chunk_files(state, m.version)) == n - len(withheld),
        "the chunks published so far on the kiosk's disk",
        proc=agent.proc,
    )
    current = (state / "offline" / "CURRENT").read_text()
    agent.kill()  # SIGKILL in the middle of the download
    assert (state / "offline" / "CURRENT").read_text() == current

    mark = agent.events.mark()
    agent = region.start_agent(DOWNLOAD, signals="mock", display="console", env=AGENT_ENV)
    wait_for_evidence(
        lambda: (
            f"offline list {m.version} (full): fetching {len(withheld)} of {n} chunks"
            in agent.logs()
        ),
        "the download resumed with only the missing chunks",
        proc=agent.proc,
    )
    _broker_down(region, agent)
    shown, off = _offline_scan(agent, probe)  # the old, whole list answers
    assert shown["after"] == "possible_match_offline"
    assert (off["outcome"], off["list_version"]) == ("LISTED", held)
    _ack(agent)
    _back_online(region, agent, shown["seq"])
    for i in withheld:
        lists.link.chunk(new, i)
    installed = agent.wait_event(
        lambda e: e["event"] == "list" and e["list_version"] == m.version, "the new list", mark
    )
    assert installed["records"] == m.records and "chunk" not in installed["sync"]["refusals"]
    assert installed["sync"]["chunks_received"] == len(withheld)  # only the missing ones
    _broker_down(region, agent)
    shown, off = _offline_scan(agent, probe)
    assert shown["after"] == "not_listed"
    assert (off["outcome"], off["list_version"]) == ("NOT_LISTED", m.version)
    # Still in the store: online it is a hit, a latched late POSSIBLE MATCH.
    assert _back_online(region, agent, shown["seq"])["offline_answer"] == "NOT_LISTED"

    # A list built 49 hours ago (its manifest signed with the regional's key says so).
    old = lists.build(m.version + 1, created=time.time() - 49 * HOUR)
    mark = agent.events.mark()
    lists.link.publish(old)
    stale = agent.wait_event(
        lambda e: e["event"] == "list" and e["list_version"] == old.manifest.version,
        "the 49-hour-old list",
        mark,
    )
    assert stale["stale"] is True and stale["list_age_s"] > 48 * HOUR
    _broker_down(region, agent)
    shown, off = _offline_scan(agent, region.listed[5])
    assert shown["after"] == "unknown"
    assert (off["outcome"], off["reason"]) == ("UNKNOWN", "stale")
    _back_online(region, agent, shown["seq"])
    agent.stop()
