"""ListSync's own rules, over a stand-in for the link that behaves like a broker holding
retained messages (the real-broker cases are in test_sync.py): the window of chunks in
flight, asking again for a chunk that never came, a refused subscription, and a newer
list replacing a download in progress. The store and the lists are real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.offline.store import OfflineStore
from firmware.offline.sync import ListSync
from firmware.protocol import topics
from host_tools.localregion.processes import wait_for_evidence

from .conftest import ListMaker
from .retained_broker import REGION, RetainedBroker


@pytest.fixture
def broker() -> RetainedBroker:
    return RetainedBroker()


@pytest.fixture
def store(maker: ListMaker, tmp_path: Path) -> OfflineStore:
    return maker.store(tmp_path / "offline")


@pytest.fixture
def syncs() -> Iterator[list[ListSync]]:
    made: list[ListSync] = []
    yield made
    for s in made:
        s.close()


def _sync(
    broker: RetainedBroker, store: OfflineStore, syncs: list[ListSync], **kw: Any
) -> ListSync:
    s = ListSync(broker, store, **kw)  # region: the store's
    syncs.append(s)
    return s.start()


def _held(sync: ListSync, version: int) -> dict[str, Any]:
    return wait_for_evidence(
        lambda: (s := sync.status())["held_version"] == version and s, f"list {version}"
    )


def test_at_most_window_chunks_are_in_flight(maker: ListMaker, broker, store, syncs) -> None:
    built = maker.full(maker.keys(4000, 1), 3, chunk_size=256)
    n = len(built.manifest.chunks)
    assert n > 3 * 4
    broker.put_list(built)
    sync = _sync(broker, store, syncs, window=3)
    status = _held(sync, 3)
    assert broker.max_chunks_in_flight == 3
    assert status["chunks_received"] == n and status["missing"] == 0
    assert sorted(t for t in broker.adds if "/manifest/" not in t) == sorted(
        topics.list_chunk_topic(REGION, "full", 3, i) for i in range(n)
    )  # each chunk asked for once
    sync.close()
    sync.close()  # idempotent
    assert sync._thread is not None and not sync._thread.is_alive()
    assert broker.dynamic_subscriptions() == ()  # the manifests' subscriptions dropped too


def test_a_chunk_that_never_came_is_asked_for_again(maker: ListMaker, broker, store, syncs) -> None:
    built = maker.full(maker.keys(2000, 2), 4, chunk_size=512)
    lost = topics.list_chunk_topic(REGION, "full", 4, 1)
    broker.drop_first.add(lost)
    broker.put_list(built)
    sync = _sync(broker, store, syncs, rerequest_after=0.2)
    _held(sync, 4)
    assert broker.adds.count(lost) == 2


def test_a_refused_subscription_is_counted(maker: ListMaker, broker, store, syncs) -> None:
    broker.refuse.add(topics.list_manifest_topic(REGION, "delta"))
    broker.put_list(maker.full(maker.keys(1000, 3), 5, chunk_size=512))
    sync = _sync(broker, store, syncs)
    status = _held(sync, 5)
    assert status["refusals"] == {"subscribe": 1}


def test_a_newer_full_list_replaces_a_download_in_progress(
    maker: ListMaker, broker, store, syncs
) -> None:
    v6 = maker.full(maker.keys(3000, 4), 6, chunk_size=256)
    v7 = maker.full(maker.keys(3000, 5), 7, chunk_size=256)
    broker.put_list(v6, manifest=False)
    broker.drop_first.add(topics.list_chunk_topic(REGION, "full", 6, 0))  # v6 stalls
    installed: list[dict[str, Any]] = []
    sync = _sync(broker, store, syncs, on_installed=installed.append, rerequest_after=3600.0)
    broker.publish(topics.list_manifest_topic(REGION, "full"), v6.manifest_bytes)
    wait_for_evidence(lambda: sync.status()["downloading"] == 6 and sync.status()["missing"] == 1,
                      "v6 waiting for chunk 0")  # fmt: skip
    broker.put_list(v7)
    _held(sync, 7)
    assert [s["held_version"] for s in installed] == [7]
    assert not any("/full/6/" in t for t in broker.dynamic_subscriptions())
    with store.current() as lst:
        assert lst.version == 7


def test_a_delta_arriving_during_its_base_download_is_applied_after_it(
    maker: ListMaker, broker, store, syncs
) -> None:
    base_keys, new_keys = maker.keys(3000, 6), maker.keys(3000, 6)[10:]
    v6 = maker.full(base_keys, 6, chunk_size=256)
    d7 = maker.delta(base_keys, new_keys, 6, 7)
    chunk0 = topics.list_chunk_topic(REGION, "full", 6, 0)
    broker.drop_first.add(chunk0)  # v6 stalls on chunk 0
    broker.put_list(v6)
    installed: list[dict[str, Any]] = []
    sync = _sync(broker, store, syncs, on_installed=installed.append, rerequest_after=3600.0)
    wait_for_evidence(lambda: sync.status()["missing"] == 1, "v6 waiting for chunk 0")
    broker.put_list(d7)  # its base is the list being downloaded: it waits
    s, e = v6.manifest.chunk_span(0)
    broker.publish(chunk0, v6.payload[s:e])  # chunk 0 at last, on the live subscription
    _held(sync, 7)
    assert [st["held_version"] for st in installed] == [6, 7]
    assert sync.status()["refusals"] == {}
    assert store.current_name() == "v6-d7"


def test_a_region_other_than_the_stores_is_a_mistake(broker, store) -> None:
    with pytest.raises(ValueError, match="not the store's"):
        ListSync(broker, store, region="north")
