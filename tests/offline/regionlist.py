"""A region's offline list published over its real Mosquitto as the regional will, and a
kiosk's :class:`~firmware.offline.sync.ListSync` over a real link with its bundle identity.

Until provisioning writes the offline-list key, :func:`write_list_key` puts one (the
``firmware.offline.listkey`` format) in the broker directory and in every bundle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from firmware.config import ConfigDoc
from firmware.offline.config import OfflineTerminalConfig
from firmware.offline.listkey import key_id, load_list_key
from firmware.offline.store import OfflineStore
from firmware.offline.sync import ListSync
from firmware.protocol import topics
from firmware.protocol.keys import load_ed25519_private, load_ed25519_public
from firmware.transport.mqtt import BrokerConfig, MqttLink
from host_tools.localregion.processes import wait_for_evidence
from host_tools.offline.builder import Built, hash_store
from host_tools.offline.config import OfflineBuildConfig
from host_tools.offline.publisher import ListPublisher
from host_tools.sltd.store import open_store
from tests.support.localregion import TestRegion

PUBLISH_TIMEOUT = 20.0


def write_list_key(region: TestRegion) -> bytes:
    """The region's offline-list key (64 hex characters, mode 0600) where provisioning
    will put it: ``broker/offline-list.key`` and each bundle's ``offline-list.key``."""
    key = os.urandom(32)
    for p in [region.broker_dir, *region.bundles.values()]:
        f = p / "offline-list.key"
        f.write_text(key.hex() + "\n")
        f.chmod(0o600)
    return key


def broker_config(toml: Path) -> BrokerConfig:
    """The ``[broker]`` identity of a regional.toml or terminal.toml."""
    return BrokerConfig.from_section(ConfigDoc.load(toml).section("broker"))


def region_keys(region: TestRegion) -> tuple[int, np.ndarray]:
    """(list version, sorted keyed hashes) of the region's SLTD store, as the regional hashes it."""
    cfg = OfflineBuildConfig.load(region.regional_toml)
    with open_store(cfg.sltd_db) as store:
        return hash_store(store, load_list_key(cfg.list_key))


def list_publisher(region: TestRegion, chunk_size: int = 256) -> ListPublisher:
    """Builds lists signed with the region's ``regional-sign.key`` (16-bit: no false
    positive among the samples)."""
    cfg = OfflineBuildConfig.load(region.regional_toml)
    return ListPublisher(
        region=region.region,
        sign_key=load_ed25519_private(cfg.sign_key),
        key_id=key_id(load_list_key(cfg.list_key)),
        bits=16,
        chunk_size=chunk_size,
    )


class RegionalLink:
    """The regional's identity on the broker, publishing list topics (retained, QoS 1)."""

    def __init__(self, region: TestRegion):
        self.region = region.region
        self.link = MqttLink(
            broker_config(region.regional_toml), "regional-list-test", on_message=lambda t, p: None
        )
        self.link.start()
        if not self.link.wait_ready(PUBLISH_TIMEOUT):
            raise AssertionError("the regional's test link never became ready")

    def put(self, topic: str, payload: bytes) -> None:
        """Publish once the link is up, and wait for the broker's PUBACK. After a broker
        restart the link comes back after a jittered delay (as the regional's does); a
        publish paho refuses as "not connected" (the drop came before its callback cleared
        ``ready``) is made again once the link is back (retained: a second copy is the same
        message)."""
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.link.wait_ready(left):
                raise AssertionError(f"the regional's test link is down: {topic} not published")
            info = self.link.publish(topic, payload, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                break
            wait_for_evidence(
                lambda: not self.link.ready.is_set(), "the test link's drop noticed", timeout=10.0
            )
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))  # PUBACK: the broker holds it
        assert info.is_published(), topic

    def chunk(self, built: Built, index: int, payload: bytes | None = None) -> None:
        m = built.manifest
        s, e = m.chunk_span(index)
        data = built.payload[s:e] if payload is None else payload
        self.put(topics.list_chunk_topic(self.region, m.kind, m.version, index), data)

    def publish(self, built: Built, *, skip: tuple[int, ...] = ()) -> None:
        """Every chunk (but ``skip``), then the manifest: a kiosk that sees the manifest
        finds its chunks."""
        for i in range(len(built.manifest.chunks)):
            if i not in skip:
                self.chunk(built, i)
        self.manifest(built.manifest.kind, built.manifest_bytes)

    def manifest(self, kind: str, data: bytes) -> None:
        self.put(topics.list_manifest_topic(self.region, kind), data)

    def clear(self) -> None:
        """No retained manifest of either kind (an empty retained message deletes it)."""
        for kind in ("full", "delta"):
            self.manifest(kind, b"")

    def close(self) -> None:
        self.link.close()


@dataclass
class Kiosk:
    """A kiosk's store and ListSync over its own real link (bundle identity)."""

    cfg: OfflineTerminalConfig
    list_key: bytes
    store: OfflineStore
    link: MqttLink
    sync: ListSync
    installed: list[dict]

    def close(self) -> None:
        self.sync.close()
        self.link.close()

    def wait(self, evidence: Callable[[dict], Any], what: str, timeout: float = 60.0) -> Any:
        return wait_for_evidence(lambda: evidence(self.sync.status()), what, timeout=timeout)


def kiosk_store(
    region: TestRegion, tid: str, state_dir: Path
) -> tuple[OfflineTerminalConfig, bytes, OfflineStore]:
    cfg = OfflineTerminalConfig.load(region.terminal_toml(tid), state_dir=state_dir)
    list_key = load_list_key(cfg.list_key)
    store = OfflineStore(
        cfg.store_dir,
        region=cfg.region,
        sign_public=load_ed25519_public(cfg.sign_public),
        key_id=key_id(list_key),
    )
    return cfg, list_key, store


def start_kiosk(region: TestRegion, tid: str, state_dir: Path, **kw: object) -> Kiosk:
    cfg, list_key, store = kiosk_store(region, tid, state_dir)
    link = MqttLink(broker_config(region.terminal_toml(tid)), f"{tid}-sync",
                    on_message=lambda t, p: None)  # fmt: skip
    installed: list[dict] = []
    sync = ListSync(link, store, region=cfg.region, on_installed=installed.append, **kw)  # type: ignore[arg-type]
    link.start()
    sync.start()
    return Kiosk(cfg, list_key, store, link, sync, installed)
