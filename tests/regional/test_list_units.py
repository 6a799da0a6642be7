"""The regional's offline-list parts without a broker: the keyed hashes kept current from
the store's change log, and a regional.toml whose offline-list key is missing."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import ConfigError
from firmware.protocol.dockey import DocumentKey, keyed_hash64
from host_tools.offline.keyset import KeyedHashes
from host_tools.offline.publisher import ListPublisher, PublishPolicy
from host_tools.regional.config import RegionalConfig
from host_tools.regional.list_publishing import ListPublishing
from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import open_store

from .conftest import wait_for

KEY = bytes(range(32))


def rec(number: str, state: str = "UTO") -> SltdRecord:
    return SltdRecord(state, "P", number, Status.STOLEN, state, dt.date(2025, 3, 1), "REF/1")


def expected(numbers: list[str]) -> np.ndarray:
    """Independently: firmware's keyed hash of each document key, sorted."""
    return np.array(
        sorted(keyed_hash64(KEY, DocumentKey("UTO", "P", n)) for n in numbers), dtype=np.uint64
    )


def test_keyed_hashes_follow_the_change_log_without_rehashing(tmp_path):
    with open_store(tmp_path / "s.sqlite", create=True) as store:
        store.upsert([rec(f"A{i:07d}") for i in range(50)])
        kh = KeyedHashes(store, KEY)
        v1, k1 = kh.current()
        assert v1 == store.version() and np.array_equal(
            k1, expected([f"A{i:07d}" for i in range(50)])
        )
        store.remove([("UTO", "P", "A0000003"), ("UTO", "P", "A0000004")])
        store.upsert([rec("B0000001"), rec("A0000003")])  # re-added after its removal
        store.upsert([rec("A0000010")])  # an update of a listed record: still one key
        v2, k2 = kh.current()
        want = [f"A{i:07d}" for i in range(50) if i != 4] + ["B0000001"]
        assert v2 == store.version() > v1 and np.array_equal(k2, expected(want))
        assert kh.full_hashes == 1  # the changes were applied, not the store rehashed
        v3, k3 = kh.current()  # nothing changed since
        assert v3 == v2 and np.array_equal(k3, k2) and kh.full_hashes == 1


def test_changes_since_gives_the_exact_delta_against_any_logged_version(tmp_path):
    with open_store(tmp_path / "s.sqlite", create=True) as store:
        store.upsert([rec(f"A{i:07d}") for i in range(20)])
        kh = KeyedHashes(store, KEY)
        v1, _ = kh.current()
        store.remove([("UTO", "P", "A0000001"), ("UTO", "P", "A0000002")])
        store.upsert([rec("B0000001"), rec("B0000002"), rec("A0000005")])  # A5: already in
        v2, _ = kh.current()
        store.upsert([rec("A0000001")])  # back as at v1
        store.remove([("UTO", "P", "B0000002")])  # entered after v1, gone again
        v3, k3 = kh.current()
        entered, left = kh.changes_since(v1)
        assert np.array_equal(entered, expected(["B0000001"]))
        assert np.array_equal(left, expected(["A0000002"]))
        e2, l2 = kh.changes_since(v2)
        assert np.array_equal(e2, expected(["A0000001"]))
        assert np.array_equal(l2, expected(["B0000002"]))
        assert [a.size for a in kh.changes_since(v3)] == [0, 0]
        assert kh.changes_since(v1 - 1) is None  # before the log starts: unknown
        # the publisher's delta from the log is the one an independent set difference gives

        calls: list[int] = []

        def changes(v: int):
            calls.append(v)
            return kh.changes_since(v)

        pub = ListPublisher(
            region="uto", sign_key=Ed25519PrivateKey.generate(), key_id=bytes(8),
            policy=PublishPolicy(max_delta_fraction=1.0),
        )  # fmt: skip
        first = pub.update(v1, expected([f"A{i:07d}" for i in range(20)]))
        assert first is not None and first.full is not None
        d = pub.update(v3, k3, changes=changes)
        assert d is not None and d.delta is not None and calls == [v1]
        base = {int(k) for k in expected([f"A{i:07d}" for i in range(20)])}
        now = {int(k) for k in k3}
        assert d.delta.manifest.filter["added"] == len(now - base) == 1
        assert d.delta.manifest.filter["removed"] == len(base - now) == 1
        assert d.delta.manifest.records == len(now)


def test_a_missing_list_key_disables_publishing_with_one_warning(region, caplog):
    key = region.broker_dir / "offline-list.key"
    saved = key.read_bytes()
    key.unlink()
    try:
        cfg = RegionalConfig.load(region.regional_toml, environ={})  # loads: not an error
        with caplog.at_level(logging.WARNING, "host_tools.regional.list_publishing"):
            lp = ListPublishing(cfg, store=None, sign_key=None, link=None).start()  # type: ignore[arg-type]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "offline list is not published" in warnings[0]
        h = lp.health()
        assert h["publisher"] is False and h["version"] is None and "disabled" in h
        lp.stop()
    finally:
        key.write_bytes(saved)
        key.chmod(0o600)


def test_the_service_runs_without_the_key_and_says_so_once(region, broker):
    key = region.broker_dir / "offline-list.key"
    saved = key.read_bytes()
    key.unlink()
    try:
        _proc, health = region.start_regional()  # ready: the query path works without it
    finally:
        key.write_bytes(saved)
        key.chmod(0o600)
    h = region.health(health)["offline_list"]
    assert h["publisher"] is False and "disabled" in h
    said = "the offline list is not published"
    wait_for(lambda: said in region.logs(), "the warning in the regional's log")
    assert region.logs().count(said) == 1
    region.stop_all()


def test_bad_offline_settings_name_the_field(region):
    for var, value, field in (
        ("FIELDTERM_OFFLINE__FINGERPRINT_BITS", "12", "offline.fingerprint_bits"),
        ("FIELDTERM_OFFLINE__CHUNK_SIZE", "100", "offline.chunk_size"),
        ("FIELDTERM_OFFLINE__PUBLISH_INTERVAL", "0", "offline.publish_interval"),
        ("FIELDTERM_OFFLINE__PUBLISH_INTERVL", "5", "offline.publish_intervl"),
    ):
        with pytest.raises(ConfigError) as err:
            RegionalConfig.load(region.regional_toml, environ={var: value})
        assert field in str(err.value), (var, str(err.value))
