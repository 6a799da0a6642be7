"""The regional publishes the offline list over a real Mosquitto, read with a kiosk's
identity and assembled by the kiosk's own store (firmware.offline.store).

One region for the module, in order: the first full list; a record removed from the store
and the delta that follows; a full rebuild that clears the old list's retained chunks; a
second process that does not publish; a restart that republishes the same bytes. The
expected answers come from ``sltd generate``'s listed and unlisted samples, not from the
code under test. Every wait is for evidence (retained messages, health), never a sleep.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.mrz import parse
from firmware.offline.listkey import key_id, load_list_key
from firmware.offline.store import OfflineStore
from firmware.protocol import keys, topics
from firmware.protocol.dockey import DocumentKey
from host_tools.sltd.store import open_store
from tests.provision.helpers import Peer

from .conftest import TERMINALS, Region, wait_for

REGION = "central"
LIST = f"ft/v1/{REGION}/list/"
#: short interval, small chunks (several per list), 16-bit fingerprints (a false positive
#: on the 20 unlisted samples is then a 1-in-3000 event), a rebuild after 3 changes
ENV = {
    "FIELDTERM_OFFLINE__PUBLISH_INTERVAL": "0.3",
    "FIELDTERM_OFFLINE__CHUNK_SIZE": "512",
    "FIELDTERM_OFFLINE__FINGERPRINT_BITS": "16",
    "FIELDTERM_OFFLINE__MAX_DELTA_CHANGES": "3",
}


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


class ListPeer(Peer):
    """A kiosk's MQTT identity that keeps only what the broker sent from its retained
    store (the retain flag set), recording whether each came at QoS 1 (it subscribes at
    QoS 1: a QoS 0 publication would arrive as QoS 0). A publication that goes out while
    it is subscribed reaches it live, without the flag, and is not part of a snapshot."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.qos1: list[bool] = []
        self.live: list[tuple[str, bytes]] = []

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self._cond:
            if not msg.retain:
                self.live.append((msg.topic, msg.payload))
                return
            self.received.append((msg.topic, msg.payload))
            self.qos1.append(msg.qos == 1)
            self._cond.notify_all()


def snapshot(region: Region) -> dict[str, bytes]:
    """Every retained message under the list subtree now, as a kiosk sees it. A second
    SUBSCRIBE to the full manifest is the sentinel: Mosquitto sends the retained messages
    of one SUBSCRIBE before it handles the next, so once the manifest has come twice,
    everything retained under ``list/#`` has arrived."""
    peer = ListPeer.from_bundle(region.port, region.bundle("kiosk-002"), name="snapshot").connect()
    try:
        assert not peer.subscribe(LIST + "#")[0].is_failure
        peer.subscribe(topics.list_manifest_topic(REGION, "full"))
        peer.wait_messages(topics.list_manifest_topic(REGION, "full"), 2)
        assert all(peer.qos1[: len(peer.received) - 1]), "a list topic retained below QoS 1"
        return dict(peer.received[:-1])
    finally:
        peer.close()


def manifest_of(data: bytes) -> dict[str, Any]:
    return json.loads(data)["manifest"]


class Kiosk:
    """A kiosk's offline store fed by hand from the retained topics."""

    def __init__(self, region: Region, root: Path):
        bundle = region.bundle("kiosk-001")
        self.list_key = load_list_key(bundle / "offline-list.key")
        self.store = OfflineStore(
            root,
            region=REGION,
            sign_public=keys.load_ed25519_public(bundle / "regional-sign.pub"),
            key_id=key_id(self.list_key),
        )

    def install(self, retained: dict[str, bytes], kind: str) -> Any:
        manifest = retained[topics.list_manifest_topic(REGION, kind)]
        dl = self.store.begin(manifest)
        m = manifest_of(manifest)
        for i in range(len(m["chunks"])):
            dl.put(i, retained[topics.list_chunk_topic(REGION, kind, m["version"], i)])
        return dl.install()

    def answers(self, lst: Any, samples: list[list[str]]) -> list[bool]:
        return [lst.listed(self.list_key, dk_of(s)) for s in samples]


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[Region]:
    d = tmp_path_factory.mktemp("listpub")
    with Region(d, terminals=TERMINALS[:2], records=2000, seed=11) as r:
        r.provision().generate_list()
        r.start_broker()
        r.start_regional(env=ENV)
        yield r


@pytest.fixture(scope="module")
def kiosk(region: Region, tmp_path_factory) -> Kiosk:
    return Kiosk(region, tmp_path_factory.mktemp("kiosk") / "offline")


def store_version(region: Region) -> int:
    with open_store(region.sltd_db) as s:
        return s.version()


def wait_retained(region: Region, pred: Any, what: str) -> dict[str, bytes]:
    def check() -> dict[str, bytes] | None:
        r = snapshot(region)
        return r if pred(r) else None

    return wait_for(check, what)


def test_full_list_arrives_retained_and_answers_like_the_store(region, kiosk):
    want = store_version(region)
    h = region.regional.wait_health(
        lambda h: h["offline_list"]["store_version"] == want, "the first list published"
    )["offline_list"]
    assert h["publisher"] is True and h["kind"] == "full" and h["records"] == 2000
    retained = snapshot(region)
    m = manifest_of(retained[topics.list_manifest_topic(REGION, "full")])
    assert (m["kind"], m["records"], m["chunk_size"]) == ("full", 2000, 512)
    assert m["version"] == h["version"] >= int(m["created"])  # the list's own version
    assert m["size"] == h["bytes"] and len(m["chunks"]) == -(-m["size"] // 512) >= 4
    lst = kiosk.install(retained, "full")
    assert lst.version == m["version"]
    assert all(kiosk.answers(lst, region.listed))
    assert not any(kiosk.answers(lst, region.unlisted))
    lst.close()


def test_removed_record_stops_hitting_after_the_delta(region, kiosk):
    gone = dk_of(region.listed[0])
    full = snapshot(region)
    base = manifest_of(full[topics.list_manifest_topic(REGION, "full")])["version"]
    with open_store(region.sltd_db) as s:
        assert s.remove([(gone.issuing_state, gone.category, gone.number)]) == 1
    retained = wait_retained(
        region,
        lambda r: topics.list_manifest_topic(REGION, "delta") in r,
        "a delta manifest",
    )
    m = manifest_of(retained[topics.list_manifest_topic(REGION, "delta")])
    assert m["kind"] == "delta" and m["base_version"] == base and m["version"] > base
    delta_topics = {topics.list_manifest_topic(REGION, "delta")} | {
        topics.list_chunk_topic(REGION, "delta", m["version"], i) for i in range(len(m["chunks"]))
    }
    # the full list the delta applies to is still there, byte for byte, beside the delta
    assert {t: v for t, v in retained.items() if t not in delta_topics} == full
    assert (m["filter"]["added"], m["filter"]["removed"]) == (0, 1)
    lst = kiosk.install(retained, "delta")
    assert lst.version == m["version"]
    assert kiosk.answers(lst, region.listed) == [False] + [True] * (len(region.listed) - 1)
    assert not any(kiosk.answers(lst, region.unlisted))
    lst.close()
    region.regional.wait_health(
        lambda h: (
            h["offline_list"]["version"] == m["version"] and h["offline_list"]["kind"] == "delta"
        ),
        "health showing the delta",
    )


def test_full_rebuild_clears_the_old_lists_retained_chunks(region, kiosk):
    before = snapshot(region)
    old_full = manifest_of(before[topics.list_manifest_topic(REGION, "full")])
    with open_store(region.sltd_db) as s:  # 5 changes against the base: more than 3
        removed = [dk_of(x) for x in region.listed[1:5]]
        assert s.remove([(d.issuing_state, d.category, d.number) for d in removed]) == 4
    old_version = old_full["version"]

    def full_topics(m: dict[str, Any]) -> set[str]:
        return {topics.list_manifest_topic(REGION, "full")} | {
            topics.list_chunk_topic(REGION, "full", m["version"], i)
            for i in range(len(m["chunks"]))
        }

    def rebuilt_and_old_cleared(r: dict[str, bytes]) -> bool:
        # the regional clears the old topics only once the new manifest is acknowledged:
        # a snapshot in between holds both, so wait for the clearing to be seen too
        m = manifest_of(r[topics.list_manifest_topic(REGION, "full")])
        old = set(before) - {topics.list_manifest_topic(REGION, "full")}  # chunks, delta
        return m["version"] > old_version and not (old & set(r))

    retained = wait_retained(region, rebuilt_and_old_cleared, "the rebuilt full list")
    m = manifest_of(retained[topics.list_manifest_topic(REGION, "full")])
    expected = full_topics(m)
    # nothing of the old full list or of the delta on it is retained any more
    assert set(retained) == expected, sorted(set(retained) - expected)
    assert m["records"] == 2000 - 5
    lst = kiosk.install(retained, "full")
    assert kiosk.answers(lst, region.listed) == [False] * 5 + [True] * (len(region.listed) - 5)
    lst.close()


def test_a_second_process_does_not_publish(region):
    region.start_regional(env=ENV)
    h = region.regionals[1].wait_health(
        lambda h: h["offline_list"].get("waiting"), "the second process's health"
    )["offline_list"]
    assert h["publisher"] is False and h["version"] is None
    assert region.health(region.regional.health_file)["offline_list"]["publisher"] is True


def test_restart_republishes_the_same_bytes(region):
    before = snapshot(region)
    version = manifest_of(before[topics.list_manifest_topic(REGION, "full")])["version"]
    first = region.regional
    first.signal(signal.SIGTERM)
    first.stop()
    stopped = time.time()
    # the second process takes over (the lock is free) and republishes what is on disk
    second = region.regionals[1]
    second.wait_health(
        lambda h: h["offline_list"]["publisher"] and h["offline_list"]["version"] == version,
        "the second process publishing",
    )
    h = second.health()["offline_list"]
    assert h["published_at"] is not None and h["published_at"] >= stopped
    assert f"offline list: resuming at version {version}" in second.logs()
    assert snapshot(region) == before


def test_after_a_reconnect_the_list_is_sent_again(region):
    before = snapshot(region)
    m = manifest_of(before[topics.list_manifest_topic(REGION, "full")])
    chunk = topics.list_chunk_topic(REGION, "full", m["version"], 0)
    d = region.broker_dir
    wiper = Peer(region.port, d / "ca.crt", d / "regional.crt", d / "regional.key", "wiper")
    wiper.connect()
    try:  # as a broker that lost its retained messages would have
        assert not wiper.publish(chunk, b"", retain=True).is_failure
    finally:
        wiper.close()
    assert chunk not in snapshot(region)
    publisher = region.regionals[1]
    connects = publisher.health()["connects"]
    region.broker.stop()
    region.start_broker()
    publisher.wait_health(lambda h: h["connects"] > connects and h["ready"], "the reconnect")
    wait_retained(region, lambda r: r == before, "the list sent again after the reconnect")
