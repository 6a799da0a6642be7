"""Signed manifests and list directories: what a kiosk accepts and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline import listdir
from firmware.offline.errors import (
    ListBaseError,
    ListChunkError,
    ListFormatError,
    ListKeyError,
    ListRegionError,
    ListSignatureError,
)
from firmware.offline.listkey import list_hash
from firmware.offline.manifest import Manifest, verify_manifest
from firmware.protocol.dockey import DocumentKey
from host_tools.offline.builder import write_list_dir

from .conftest import ListMaker


def test_manifest_round_trips_with_every_field(maker: ListMaker) -> None:
    keys = maker.keys(5000, 1)
    built = maker.full(keys, 41, chunk_size=1024, created=1_700_000_000.5)
    m = verify_manifest(maker.sign_key.public_key(), built.manifest_bytes, "central")
    assert (m.region, m.version, m.kind, m.base_version, m.records) == (
        "central", 41, "full", None, keys.size,
    )  # fmt: skip
    assert m.created == 1_700_000_000.5
    assert m.size == len(built.payload) and m.chunk_size == 1024
    assert len(m.chunks) == -(-len(built.payload) // 1024)
    assert m.filter["fingerprint_bits"] == 8 and m.key_id == maker.key_id
    for i in range(len(m.chunks)):
        s, e = m.chunk_span(i)
        m.check_chunk(i, built.payload[s:e])


def test_any_flipped_byte_of_the_manifest_is_refused(maker: ListMaker) -> None:
    built = maker.full(maker.keys(300, 2), 3, chunk_size=256)
    data = built.manifest_bytes
    pub = maker.sign_key.public_key()
    for pos in range(0, len(data) - 1, 7):  # the final newline is not part of the JSON
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises((ListSignatureError, ListFormatError)):
            verify_manifest(pub, bytes(bad), "central")


def test_another_key_is_refused_as_signature(maker: ListMaker) -> None:
    built = maker.full(maker.keys(100, 3), 3)
    with pytest.raises(ListSignatureError) as ei:
        verify_manifest(Ed25519PrivateKey.generate().public_key(), built.manifest_bytes, "central")
    assert ei.value.reason == "signature"


def test_another_regions_list_is_refused_as_region(maker: ListMaker) -> None:
    north = ListMaker(region="north", sign_key=maker.sign_key, list_key=maker.list_key)
    built = north.full(maker.keys(100, 4), 3)
    with pytest.raises(ListRegionError) as ei:
        verify_manifest(maker.sign_key.public_key(), built.manifest_bytes, "central")
    assert ei.value.reason == "region"


def test_a_wrong_chunk_is_refused_naming_it(maker: ListMaker) -> None:
    built = maker.full(maker.keys(3000, 5), 3, chunk_size=512)
    m = built.manifest
    s, e = m.chunk_span(2)
    bad = bytearray(built.payload[s:e])
    bad[10] ^= 0x80
    with pytest.raises(ListChunkError, match="chunk 2: SHA-256") as ei:
        m.check_chunk(2, bytes(bad))
    assert ei.value.reason == "chunk"
    with pytest.raises(ListChunkError, match="chunk 2: 511 bytes"):
        m.check_chunk(2, built.payload[s : e - 1])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": 0}, "manifest.version"),
        ({"kind": "partial"}, "manifest.kind"),
        ({"base_version": 2}, "manifest.base_version"),
        ({"chunk_size": 100}, "manifest.chunk_size"),
        ({"chunks": []}, "manifest.chunks"),
        ({"region": "Central"}, "manifest.region"),
        ({"extra": 1}, "unknown"),
        ({"v": 2}, "manifest.v"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    maker: ListMaker, change: dict[str, object], field: str
) -> None:
    body = maker.full(maker.keys(100, 6), 3).manifest.body()
    body.update(change)
    with pytest.raises(ListFormatError, match=field):
        Manifest.from_body(body)


def test_list_directory_answers_for_documents_and_refuses_a_tampered_filter(
    maker: ListMaker, tmp_path: Path
) -> None:
    listed = [DocumentKey("UTO", "P", f"L{i:08d}") for i in range(2000)]
    unlisted = [DocumentKey("UTO", "P", f"X{i:08d}") for i in range(4000)]
    keys = np.unique(np.array([list_hash(maker.list_key, dk) for dk in listed], dtype=np.uint64))
    built = maker.full(keys, 7, chunk_size=512)
    d = write_list_dir(tmp_path / "list", built)
    with listdir.open_list(d, maker.sign_key.public_key(), "central", maker.key_id) as lst:
        assert lst.version == 7 and lst.records == 2000
        assert all(lst.listed(maker.list_key, dk) for dk in listed)
        fp = sum(lst.listed(maker.list_key, dk) for dk in unlisted)
        assert fp < 4000 * 0.01  # 2^-8 expected: about 16
    with pytest.raises(ListKeyError) as ei:
        listdir.open_list(d, maker.sign_key.public_key(), "central", bytes(8))
    assert ei.value.reason == "key"
    data = bytearray((d / listdir.FILTER).read_bytes())
    data[700] ^= 0x01
    (d / listdir.FILTER).write_bytes(bytes(data))
    with pytest.raises(ListChunkError, match="chunk 1"):
        listdir.open_list(d, maker.sign_key.public_key(), "central", maker.key_id)


def test_a_delta_adds_and_removes_records(maker: ListMaker, tmp_path: Path) -> None:
    base = maker.keys(20_000, 8)
    removed = base[::10]  # 2000 records leave the list
    added = maker.keys(500, 9)
    new = np.union1d(np.setdiff1d(base, removed), added)
    full = maker.full(base, 10, chunk_size=4096)
    delta = maker.delta(base, new, 10, 12)
    assert delta.manifest.filter["added"] == added.size
    assert delta.manifest.filter["removed"] == removed.size
    assert len(delta.payload) == 64 + 8 * (added.size + removed.size)
    d = write_list_dir(tmp_path / "list", full, delta)
    with listdir.open_list(d, maker.sign_key.public_key(), "central", maker.key_id) as lst:
        assert lst.version == 12 and lst.records == new.size and lst.full.version == 10
        assert not any(lst.listed_hash(int(h)) for h in removed)
        assert all(lst.listed_hash(int(h)) for h in added)
        assert all(lst.listed_hash(int(h)) for h in new)
        # the same removed hashes are listed by the full list alone
        assert all(lst.filter.contains(int(h)) for h in removed)


def test_a_delta_for_another_base_is_refused(maker: ListMaker, tmp_path: Path) -> None:
    base = maker.keys(1000, 10)
    full = maker.full(base, 10)
    other = maker.delta(base, base[1:], 9, 12)
    d = write_list_dir(tmp_path / "list", full, other)
    with pytest.raises(ListBaseError) as ei:
        listdir.open_list(d, maker.sign_key.public_key(), "central", maker.key_id)
    assert ei.value.reason == "base"


def test_the_signed_bytes_are_canonical_json(maker: ListMaker) -> None:
    built = maker.full(maker.keys(10, 11), 1)
    doc = json.loads(built.manifest_bytes)
    assert set(doc) == {"manifest", "sig"} and built.manifest_bytes.endswith(b"\n")
