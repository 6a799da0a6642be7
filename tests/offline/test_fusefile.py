"""The kiosk's own filter lookup against the reference C library (golden vectors and live)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from firmware.offline.errors import ListFormatError
from firmware.offline.fusefile import HEADER_SIZE, FuseFilterFile, FuseHeader
from host_tools.offline import fusebuild
from tests.offline.make_golden import CASES, GOLDEN

KEY_ID = bytes.fromhex("0123456789abcdef")


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_golden_vectors_answer_as_the_c_library(name: str) -> None:
    doc = json.loads((GOLDEN / f"{name}.json").read_text())
    with FuseFilterFile(GOLDEN / doc["filter"]) as f:
        assert f.header.fingerprint_bits == doc["fingerprint_bits"]
        assert f.header.shard_bits == doc["shard_bits"]
        assert f.header.key_id.hex() == doc["key_id"]
        assert len(f) == len(doc["members"])
        ours_m = "".join("1" if f.contains(int(k, 16)) else "0" for k in doc["members"])
        ours_o = "".join("1" if f.contains(int(k, 16)) else "0" for k in doc["others"])
    assert ours_m == doc["member_answers"] == "1" * len(doc["members"])
    assert ours_o == doc["other_answers"]
    # the vectors are worth something only if some non-members do answer yes (8-bit)
    if doc["fingerprint_bits"] == 8:
        assert 0 < doc["other_answers"].count("1") < len(doc["others"]) // 50


@pytest.mark.parametrize(("bits", "shard_bits"), [(8, 0), (16, 0), (8, 4), (16, 1)])
def test_live_filter_agrees_with_the_c_library_on_every_probe(
    tmp_path: Path, bits: int, shard_bits: int
) -> None:
    rng = np.random.default_rng(bits + shard_bits)
    keys = np.unique(rng.integers(0, 2**64, size=50_000, dtype=np.uint64))
    probes = rng.integers(0, 2**64, size=30_000, dtype=np.uint64)
    lib, _ = fusebuild._c()
    contain = getattr(lib, f"binary_fuse{bits}_contain")
    with fusebuild.c_filters(keys, bits, shard_bits=shard_bits) as cf:
        data = cf.file_bytes(KEY_ID)
        assert len(cf.filters) == 1 << shard_bits
        # the C call itself, on the filter of the key's top shard_bits bits
        c_answers = [bool(contain(int(k), cf.filters[int(k) >> (64 - shard_bits)])) for k in probes]
        c_members = [cf.contains(int(k)) for k in keys[:5000]]
    path = tmp_path / "f.ftol"
    path.write_bytes(data)
    with FuseFilterFile(path) as f:
        assert [f.contains(int(k)) for k in probes] == c_answers
        assert all(f.contains(int(k)) for k in keys)
        assert len(f) == keys.size
    assert all(c_members)
    if bits == 8:  # the comparison is worth something only if some non-members answer yes
        assert 0 < sum(c_answers) < len(probes) // 50


def test_shards_hold_the_keys_of_their_top_bits() -> None:
    keys = np.sort(np.random.default_rng(9).integers(0, 2**64, size=10_000, dtype=np.uint64))
    parts = fusebuild.split(keys, 3)
    assert len(parts) == 8 and sum(p.size for p in parts) == keys.size
    for i, p in enumerate(parts):
        assert all(int(k) >> 61 == i for k in p)


def test_default_shard_bits_keep_shards_near_four_million_keys() -> None:
    assert fusebuild.shard_bits_for(0) == 0
    assert fusebuild.shard_bits_for(fusebuild.SHARD_KEYS) == 0
    assert fusebuild.shard_bits_for(fusebuild.SHARD_KEYS + 1) == 1
    assert fusebuild.shard_bits_for(24_000_000) == 3
    assert fusebuild.shard_bits_for(100_000_000) == 5


def test_unsorted_keys_with_duplicates_are_sorted_and_deduplicated_first() -> None:
    keys = np.random.default_rng(11).integers(0, 2**64, size=3000, dtype=np.uint64)
    shuffled = np.concatenate([keys, keys[:100]])
    np.random.default_rng(12).shuffle(shuffled)
    with fusebuild.c_filters(shuffled, 8, shard_bits=2) as cf:
        assert cf.header(KEY_ID).records == np.unique(keys).size
        assert all(cf.contains(int(k)) for k in keys)


def _golden_bytes() -> bytes:
    return (GOLDEN / "fuse8-3000.ftol").read_bytes()


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (0, b"XXXXXXXX", "magic"),
        (8, struct.pack("<H", 1), "layout version"),
        (10, bytes([12]), "fingerprint bits"),
        (11, bytes([4]), "arity"),
        (12, struct.pack("<I", 128), "header size"),
        (16, struct.pack("<Q", 2999), "records"),
        (24, bytes([13]), "shard bits"),
        (25, b"\x01", "reserved"),
        (40, b"\x01", "reserved"),
        (HEADER_SIZE + 12, struct.pack("<I", 1000), "shard 0: segment length 1000"),
        (HEADER_SIZE + 20, struct.pack("<I", 7), "shard 0: segment count length"),
        (HEADER_SIZE + 24, struct.pack("<I", 9), "shard 0: array length"),
        (HEADER_SIZE + 28, b"\x01", "shard 0: reserved bytes at offset 92"),
    ],
)
def test_bad_header_is_refused_naming_the_field(
    tmp_path: Path, offset: int, value: bytes, field: str
) -> None:
    data = bytearray(_golden_bytes())
    data[offset : offset + len(value)] = value
    p = tmp_path / "bad.ftol"
    p.write_bytes(bytes(data))
    with pytest.raises(ListFormatError, match=field) as ei:
        FuseFilterFile(p)
    assert ei.value.reason == "structure"


@pytest.mark.parametrize("delta", [-1, 1])
def test_file_of_the_wrong_length_is_refused(tmp_path: Path, delta: int) -> None:
    data = _golden_bytes()
    p = tmp_path / "short.ftol"
    p.write_bytes(data[:-1] if delta < 0 else data + b"\0")
    with pytest.raises(ListFormatError, match="its header says"):
        FuseFilterFile(p)


def test_truncated_header_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "tiny.ftol"
    p.write_bytes(_golden_bytes()[: HEADER_SIZE - 1])
    with pytest.raises(ListFormatError, match="shorter than the 64-byte header"):
        FuseFilterFile(p)


def test_truncated_shard_table_is_refused(tmp_path: Path) -> None:
    data = (GOLDEN / "fuse8-20000-s3.ftol").read_bytes()
    p = tmp_path / "table.ftol"
    p.write_bytes(data[: HEADER_SIZE + 32 * 5])
    with pytest.raises(ListFormatError, match="shorter than its shard table"):
        FuseFilterFile(p)


def test_a_shard_table_that_disagrees_with_the_shard_bits_is_refused(tmp_path: Path) -> None:
    data = bytearray((GOLDEN / "fuse8-20000-s3.ftol").read_bytes())
    data[24] = 2  # 4 shards said, 8 in the table: sizes no longer add up to the records
    p = tmp_path / "bits.ftol"
    p.write_bytes(bytes(data))
    with pytest.raises(ListFormatError, match="records"):
        FuseFilterFile(p)


def test_header_round_trips() -> None:
    h = FuseHeader.unpack(_golden_bytes())
    assert FuseHeader.unpack(h.pack()) == h
    assert h.file_size == len(_golden_bytes())


def test_close_is_idempotent_and_releases_the_map() -> None:
    f = FuseFilterFile(GOLDEN / "fuse16-3000.ftol")
    key = random.Random(0).getrandbits(64)
    f.contains(key)
    f.close()
    f.close()
    assert f._map.closed


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (exact: from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def test_lookups_add_resident_pages_that_release_pages_drops(tmp_path: Path) -> None:
    keys = np.unique(np.random.default_rng(3).integers(0, 2**64, size=1_000_000, dtype=np.uint64))
    path = tmp_path / "big.ftol"
    path.write_bytes(fusebuild.filter_bytes(keys, bits=8, key_id=KEY_ID, shard_bits=0))
    rng = random.Random(4)
    with FuseFilterFile(path) as f:
        before = _mapped_rss_kb(path)
        for _ in range(3000):
            f.contains(rng.getrandbits(64))
        touched = _mapped_rss_kb(path)
        f.release_pages()
        after = _mapped_rss_kb(path)
    assert before == 0  # opening leaves nothing of the file resident
    assert touched > 512  # lookups fault pages of the map in (the file is 1.1 MB)
    assert after == 0  # and they leave the resident set again
