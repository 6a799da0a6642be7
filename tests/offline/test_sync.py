"""The kiosk downloads the offline list over a real Mosquitto (issue 12, item 3).

A region from the shared LocalRegion; the list is published as the regional will
(tests/offline/regionlist.py: chunks retained on their topics, then the retained manifest,
with the regional's identity and signing key). The kiosk is a ListSync over a real link
with its bundle's identity. Expected answers come from the region's samples (listed or
not, from ``sltd generate``), never from the code under test.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.mrz import parse
from firmware.offline.answerer import OfflineAnswerer
from firmware.offline.errors import ListIncompleteError
from firmware.offline.listkey import list_hash
from firmware.protocol.dockey import DocumentKey
from host_tools.localregion.processes import wait_for_evidence
from host_tools.offline.builder import Built
from host_tools.offline.publisher import ListPublisher
from tests.support.localregion import TestRegion

from .regionlist import (
    Kiosk,
    RegionalLink,
    kiosk_store,
    list_publisher,
    region_keys,
    start_kiosk,
    write_list_key,
)

REPO = Path(__file__).resolve().parents[2]
TID = "kiosk-001"
_versions = itertools.count(100, 10)  # each test its own versions on the shared broker


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegion]:
    d = tmp_path_factory.mktemp("sync-region")
    r = TestRegion(d, terminals=(TID,), records=3000, seed=12, sample_size=10)
    with r:
        r.provision()
        r.generate_list()
        write_list_key(r)
        r.start_broker()
        yield r


@pytest.fixture(scope="module")
def keys(region: TestRegion) -> np.ndarray:
    return region_keys(region)[1]


@pytest.fixture
def regional(region: TestRegion) -> Iterator[RegionalLink]:
    rl = RegionalLink(region)
    rl.clear()  # no retained manifest left by another test
    yield rl
    rl.clear()
    rl.close()


@pytest.fixture
def kiosks() -> Iterator[list[Kiosk]]:
    started: list[Kiosk] = []
    yield started
    for k in reversed(started):
        k.close()


def doc_key(lines: list[str]) -> DocumentKey:
    result = parse(lines)
    assert result.valid
    return DocumentKey.from_mrz(result)


def verdicts(kiosk: Kiosk, docs: list[list[str]]) -> set[str]:
    with OfflineAnswerer(kiosk.store, kiosk.list_key, max_age=3600.0) as ans:
        return {ans.answer(doc_key(d)).verdict for d in docs}


def full(region: TestRegion, keys: np.ndarray, version: int, **kw: object) -> Built:
    pub = list_publisher(region, **kw)  # type: ignore[arg-type]
    publication = pub.update(version, keys, version=version)
    assert publication is not None and publication.full is not None
    return publication.full


def installed_version(kiosk: Kiosk, version: int) -> dict:
    return kiosk.wait(lambda s: s if s["held_version"] == version else None, f"list {version}")


def test_a_kiosk_downloads_installs_and_the_list_answers(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path,
) -> None:  # fmt: skip
    v = next(_versions)
    built = full(region, keys, v)
    n = len(built.manifest.chunks)
    assert n > 8  # more chunks than the window
    regional.publish(built)
    kiosks.append(k := start_kiosk(region, TID, tmp_path / "state"))
    status = installed_version(k, v)
    assert status["downloading"] is None and status["missing"] == 0
    assert status["refusals"] == {} and status["last_install"] is not None
    assert status["chunks_received"] == n  # each chunk fetched once
    assert [s["held_version"] for s in k.installed] == [v]
    assert verdicts(k, region.listed) == {"LISTED"}
    assert verdicts(k, region.unlisted) == {"NOT_LISTED"}
    assert k.link.dynamic_subscriptions() == tuple(
        f"ft/v1/{region.region}/list/manifest/{kind}" for kind in ("full", "delta")
    )  # every chunk subscription dropped once stored


def test_a_tampered_chunk_is_refused_and_nothing_installs_until_the_right_one(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path,
) -> None:  # fmt: skip
    v = next(_versions)
    built = full(region, keys, v)
    bad_index = 3
    s, e = built.manifest.chunk_span(bad_index)
    tampered = bytearray(built.payload[s:e])
    tampered[7] ^= 0x40
    regional.chunk(built, bad_index, bytes(tampered))
    regional.publish(built, skip=(bad_index,))
    kiosks.append(k := start_kiosk(region, TID, tmp_path / "state"))
    k.wait(lambda s: s["refusals"].get("chunk") == 1 and s["missing"] == 1, "chunk refused")
    assert k.sync.status()["held_version"] == 0 and k.installed == []
    with pytest.raises(ListIncompleteError):
        k.store.current()  # no half list, ever
    regional.chunk(built, bad_index)  # the right one: taken on the live subscription
    status = installed_version(k, v)
    assert status["refusals"] == {"chunk": 1}
    assert verdicts(k, region.listed) == {"LISTED"}
    assert verdicts(k, region.unlisted) == {"NOT_LISTED"}


def test_bad_signature_other_region_and_rollback_are_refused_and_the_list_stays(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path,
) -> None:  # fmt: skip
    v = next(_versions)
    regional.publish(full(region, keys, v))
    kiosks.append(k := start_kiosk(region, TID, tmp_path / "state"))
    installed_version(k, v)
    good = list_publisher(region)
    forged = ListPublisher(region=region.region, sign_key=Ed25519PrivateKey.generate(),
                           key_id=good._key_id, bits=16, chunk_size=256)  # fmt: skip
    north = ListPublisher(region="north", sign_key=good._sign, key_id=good._key_id,
                          bits=16, chunk_size=256)  # fmt: skip
    other_list_key = ListPublisher(region=region.region, sign_key=good._sign,
                                   key_id=b"\x01" * 8, bits=16, chunk_size=256)  # fmt: skip
    cases = [
        ("signature", forged, v + 1),
        ("region", north, v + 2),
        ("rollback", good, v - 1),
        ("key", other_list_key, v + 3),
    ]
    for n, (reason, pub, version) in enumerate(cases, 1):
        publication = pub.update(version, keys, version=version)
        assert publication is not None and publication.full is not None
        regional.publish(publication.full)

        def refused(s: dict, r: str = reason) -> dict | None:
            return s if s["refusals"].get(r) == 1 else None

        status = k.wait(refused, reason)
        assert sum(status["refusals"].values()) == n, status  # one refusal per manifest
        assert status["held_version"] == v and status["downloading"] is None
        with k.store.current() as lst:
            assert lst.version == v
        assert verdicts(k, region.listed[:3]) == {"LISTED"}
    assert [s["held_version"] for s in k.installed] == [v]


def test_kill_9_during_a_download_then_restart_fetches_only_the_missing_chunks(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path,
) -> None:  # fmt: skip
    v = next(_versions)
    built = full(region, keys, v)
    total = len(built.manifest.chunks)
    regional.publish(built)
    state = tmp_path / "state"
    out, err = tmp_path / "runner.out", tmp_path / "runner.err"
    stop_after = 5
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.offline.sync_runner",
             str(region.terminal_toml(TID)), str(state), str(stop_after)],
            cwd=REPO, stdout=fo, stderr=fe,
        )  # fmt: skip
    try:
        wait_for_evidence(lambda: "stored" in out.read_text(), "runner stored chunks",
                          proc=proc, log=err)  # fmt: skip
    finally:
        proc.kill()  # SIGKILL
        proc.wait(10)
    assert proc.returncode == -9
    _, _, store = kiosk_store(region, TID, state)
    assert store.current_name() is None  # nothing installed: no half list
    chunk_dir = store.incoming / f"full-v{v}" / "chunks"
    on_disk = {}
    for p in chunk_dir.iterdir():
        if p.name.isdigit():
            s, e = built.manifest.chunk_span(int(p.name))
            on_disk[int(p.name)] = p.read_bytes() == built.payload[s:e]
    assert len(on_disk) == stop_after and all(on_disk.values())  # whole chunks only

    kiosks.append(k := start_kiosk(region, TID, state))
    status = installed_version(k, v)
    assert status["chunks_received"] == total - stop_after  # only the missing ones
    assert verdicts(k, region.listed) == {"LISTED"}
    assert verdicts(k, region.unlisted) == {"NOT_LISTED"}
    assert not (store.incoming / f"full-v{v}").exists()


def test_a_delta_waits_for_its_full_list_then_a_removed_record_stops_hitting(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="firmware.offline.sync")
    v = next(_versions)
    pub = list_publisher(region)
    first = pub.update(v, keys, version=v)
    assert first is not None and first.full is not None
    list_key = (region.broker_dir / "offline-list.key").read_text().strip()
    removed, added = doc_key(region.listed[0]), doc_key(region.unlisted[0])
    h_removed, h_added = (list_hash(bytes.fromhex(list_key), d) for d in (removed, added))
    assert h_removed in set(keys.tolist()) and h_added not in set(keys.tolist())
    new_keys = np.union1d(np.setdiff1d(keys, [h_removed]), np.array([h_added], np.uint64))
    second = pub.update(v + 1, new_keys, version=v + 1)
    assert second is not None and second.delta is not None  # 2 changes: a delta
    delta = second.delta
    assert delta.manifest.base_version == v

    # The delta alone first: the kiosk holds no base, so it waits (not a refusal)...
    regional.publish(delta)
    kiosks.append(k := start_kiosk(region, TID, tmp_path / "state"))
    wait_for_evidence(lambda: "waits for its full list" in caplog.text, "the delta waiting")
    assert k.sync.status()["held_version"] == 0 and k.sync.status()["refusals"] == {}
    # ...then the full list: installed, and the waiting delta applied on it.
    regional.publish(first.full)
    status = installed_version(k, v + 1)
    assert status["refusals"] == {}
    assert [s["held_version"] for s in k.installed] == [v, v + 1]
    assert verdicts(k, [region.listed[0]]) == {"NOT_LISTED"}  # removed by the delta
    assert verdicts(k, [region.unlisted[0]]) == {"LISTED"}  # added by the delta
    assert verdicts(k, region.listed[1:]) == {"LISTED"}
    assert verdicts(k, region.unlisted[1:]) == {"NOT_LISTED"}
    assert k.store.current_name() == f"v{v}-d{v + 1}"


def test_a_link_drop_mid_download_resumes_on_reconnect(
    region: TestRegion, keys: np.ndarray, regional: RegionalLink, kiosks: list[Kiosk],
    tmp_path: Path,
) -> None:  # fmt: skip
    v = next(_versions)
    built = full(region, keys, v)
    regional.publish(built)
    reached, release = threading.Event(), threading.Event()

    def hold_once(stored: int, total: int) -> None:
        if stored == 3 and not release.is_set():
            reached.set()
            release.wait(60.0)

    kiosks.append(k := start_kiosk(region, TID, tmp_path / "state", on_progress=hold_once))
    assert reached.wait(60.0)
    assert region.broker is not None
    region.broker.stop()
    wait_for_evidence(lambda: not k.link.connected.is_set(), "the kiosk's link down")
    region.start_broker()
    release.set()
    status = installed_version(k, v)
    assert k.link.connects >= 2  # it did reconnect
    assert status["refusals"] == {} and [s["held_version"] for s in k.installed] == [v]
    assert verdicts(k, region.listed) == {"LISTED"}
    assert verdicts(k, region.unlisted) == {"NOT_LISTED"}
