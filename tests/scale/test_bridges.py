"""Site brokers from ``broker-config --site-bridge``, bridged over TLS to the regional
broker: both real Mosquitto from the generated files, a real regional process, and kiosk
queries made by the real client (``fieldterm query`` with a kiosk's bundle).

Two sites of two kiosks each: site-01 has kiosk-00001 (asks) and kiosk-00002 (listens
where it may not); site-02 has kiosk-00003 (asks) and kiosk-00004.
"""

from __future__ import annotations

import json
import time

import pytest

from firmware.protocol import telemetry, topics
from host_tools.localregion import LocalRegion
from tests.provision.helpers import Peer
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.slow

R = "central"


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    d = tmp_path_factory.mktemp("bridged")
    d.chmod(0o711)
    with TestRegion(d / "region", terminals=4, sites=2, records=500, sample_size=4) as r:
        r.provision().generate_list()
        r.start()
        yield r


def _query(region: LocalRegion, tid: str, docs: list[list[str]]) -> list[str]:
    out = region.tool.run(
        "query", "query", "--config", str(region.terminal_toml(tid)),
        "--mrz-jsonl", "--timeout", "5",
        timeout=60,
        input_text="".join(json.dumps(d) + "\n" for d in docs),
    )  # fmt: skip
    return [json.loads(x)["outcome"] for x in out.splitlines() if x.strip()]


def _spy(region: LocalRegion, tid: str) -> Peer:
    site = region.site_of[tid]
    return Peer.from_bundle(region.site_ports[site], region.bundle(tid), tid).connect()


def test_a_kiosk_behind_each_site_is_answered_by_the_region(region):
    before = region.regional.health()["answered"]
    listed, unlisted = region.listed[0], region.unlisted[0]
    assert _query(region, "kiosk-00001", [listed, unlisted]) == ["POSSIBLE_MATCH", "NO_MATCH"]
    assert _query(region, "kiosk-00003", [unlisted, listed]) == ["NO_MATCH", "POSSIBLE_MATCH"]
    h = region.regional.wait_health(lambda h: h["answered"] >= before + 4, "4 more answers")
    assert h["answered"] == before + 4  # the regional answered them, over both bridges


def test_a_kiosk_cannot_read_another_sites_topics(region):
    """kiosk-00002 (site-01) subscribes to everything of site-02's kiosk-00003 and to
    every wildcard; kiosk-00003's query and answer pass it by, while the region's offline
    list (retained, for every kiosk) reaches it over the bridge. On site-02's broker its
    certificate may do nothing at all."""
    spy = _spy(region, "kiosk-00002")
    try:
        filters = [
            topics.query_topic(R, "kiosk-00003"),
            topics.response_topic(R, "kiosk-00003"),
            topics.per_terminal_filter(R, "r"),
            topics.per_terminal_filter(R, "q"),
            telemetry.topic_filter(R),
            "#",
        ]
        for f in filters:
            spy.subscribe(f)
        assert _query(region, "kiosk-00003", [region.listed[1]]) == ["POSSIBLE_MATCH"]
        # "#" brings it the signed offline list (for every kiosk, carried by the bridge),
        # and nothing of kiosk-00003's
        got = {t for t, _ in spy.received}
        assert got and all(t.startswith(f"ft/v1/{R}/list/") for t in got), got
        # it cannot speak for kiosk-00003 on its own site broker either
        assert spy.publish(topics.query_topic(R, "kiosk-00003")).is_failure
    finally:
        spy.close()
    # nor on site-02's broker, with its own certificate
    other = Peer.from_bundle(
        region.site_ports["site-02"], region.bundle("kiosk-00002"), "kiosk-00002"
    ).connect()
    try:
        assert other.publish(topics.query_topic(R, "kiosk-00002")).is_failure
        assert other.publish(topics.query_topic(R, "kiosk-00003")).is_failure
    finally:
        other.close()


def test_a_terminals_shared_subscription_gets_nothing(region):
    """``$share/regional/...`` would put a kiosk among the regional's queue consumers. The
    regional broker refuses it in the SUBACK (dynamic security); a site broker's ACL file
    grants no read of the queries, so the kiosk gets none, and the region still gets
    them all."""
    direct = Peer.from_bundle(region.port, region.bundle("kiosk-00004"), "kiosk-00004").connect()
    try:
        (rc,) = direct.subscribe(topics.query_subscription(R, "regional"))
        assert rc.is_failure and rc.value == 0x87  # Not authorized
    finally:
        direct.close()
    spy = _spy(region, "kiosk-00002")
    try:
        spy.subscribe(topics.query_subscription(R, "regional"))
        spy.subscribe(f"$share/spy/{topics.per_terminal_filter(R, 'q')}")
        before = region.regional.health()["answered"]
        docs = [region.unlisted[1]] * 3
        assert _query(region, "kiosk-00001", docs) == ["NO_MATCH"] * 3
        region.regional.wait_health(lambda h: h["answered"] >= before + 3, "3 answers")
        assert spy.received == []
    finally:
        spy.close()


def test_bridges_reconnect_after_the_regional_broker_restarts(region):
    """Both bridges come back on their own (jittered backoff), as does the regional
    process; a kiosk behind each site is answered again."""
    assert region.broker is not None
    mark = region.bridge_mark()
    connects = region.regional.health()["connects"]
    region.broker.stop()
    t0 = time.monotonic()
    region.broker.start()
    region.wait_bridges(mark=mark)
    bridged_s = time.monotonic() - t0
    pid = region.regional.pid
    region.regional.wait_health(
        lambda h: h["connects"] > connects and h["ready"], "the regional reconnected"
    )
    assert region.regional.pid == pid  # the same process reconnected
    assert _query(region, "kiosk-00001", [region.listed[2]]) == ["POSSIBLE_MATCH"]
    assert _query(region, "kiosk-00004", [region.unlisted[2]]) == ["NO_MATCH"]
    print(f"bridges reconnected {bridged_s:.1f} s after the regional broker restarted")
