"""The query-path index: a memory-mapped sorted array of keyed 64-bit hashes.

File layout (little-endian, every part 8-byte aligned)::

    header   64 bytes   magic "FTSLTDX1", layout version, bucket bits k, count n,
                        list version, store id (16 bytes), key id (8 bytes)
    hashes   8*n        sorted uint64
    buckets  4*(2^k+1)  uint32: first position of each top-k-bits prefix

The bucket table narrows a lookup to a handful of slots so one C-level ``bisect`` over
a ``memoryview`` of the map answers in about a microsecond with no numpy call on the
hot path. k is chosen so the table costs at most ~0.5 byte per record: at 100 M
records the file is about 8.3 bytes per record.

Files are written to a temporary name, fsynced and renamed over the old one, so a
reader maps either the old or the new file, never a half-written one.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.errors import SetupError

MAGIC = b"FTSLTDX1"
LAYOUT = 1
_HEADER = struct.Struct("<8sIIQQ16s8s")  # 8+4+4+8+8+16+8 = 56, padded to 64
HEADER_SIZE = 64


def key_id(index_key: bytes) -> bytes:
    """8 bytes that name an index key without revealing it (file names, headers)."""
    return hashlib.blake2b(b"fieldterm sltd index key id", key=index_key, digest_size=8).digest()


def index_path(store_url: str, index_key: bytes, index_dir: str | Path | None = None) -> Path:
    """``<db>.idx-<keyid>`` next to a SQLite store; under ``index_dir`` if given."""
    kid = key_id(index_key).hex()
    if index_dir is None:
        return Path(f"{store_url}.idx-{kid}")
    tag = hashlib.blake2b(store_url.encode(), digest_size=6).hexdigest()
    return Path(index_dir) / f"sltd-{tag}.idx-{kid}"


def bucket_bits(n: int) -> int:
    """About 8 records per bucket, between 2^4 and 2^26 buckets."""
    k = max(n // 8, 1).bit_length() - 1
    return min(max(k, 4), 26)


@dataclass(frozen=True)
class IndexHeader:
    count: int
    bucket_bits: int
    list_version: int
    store_id: str
    key_id: bytes


class HashIndex:
    """A read-only, memory-mapped sorted hash array. ``contains`` is safe from any thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < HEADER_SIZE:
                raise SetupError(f"{self.path}: not an SLTD index (too short)")
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        magic, layout, k, n, version, sid, kid = _HEADER.unpack_from(self._mm, 0)
        if magic != MAGIC or layout != LAYOUT:
            raise SetupError(f"{self.path}: not an SLTD index (bad magic or layout)")
        expected = HEADER_SIZE + 8 * n + 4 * ((1 << k) + 1)
        if size != expected:
            raise SetupError(f"{self.path}: truncated index ({size} != {expected} bytes)")
        self.header = IndexHeader(n, k, version, sid.hex(), kid)
        self.n = n
        self.nbytes = size
        mv = memoryview(self._mm)
        self._hashes = mv[HEADER_SIZE : HEADER_SIZE + 8 * n].cast("Q")
        self._buckets = mv[HEADER_SIZE + 8 * n :].cast("I")
        self._shift = 64 - k

    def contains(self, h: int) -> bool:
        """Is the hash ``h`` (an unsigned 64-bit int) in the array?"""
        b = h >> self._shift
        lo = self._buckets[b]
        hi = self._buckets[b + 1]
        i = bisect_left(self._hashes, h, lo, hi)
        return i < hi and self._hashes[i] == h

    def array(self) -> np.ndarray:
        """The hashes as a read-only numpy view of the map (for merges and benchmarks)."""
        return np.frombuffer(self._mm, dtype="<u8", count=self.n, offset=HEADER_SIZE)

    def __len__(self) -> int:
        return self.n


def write_index(
    path: str | Path,
    sorted_hashes: np.ndarray,
    *,
    list_version: int,
    store_id: str,
    index_key_id: bytes,
) -> Path:
    """Write a sorted, unique uint64 array as an index file, atomically (tmp + rename)."""
    path = Path(path)
    arr = np.ascontiguousarray(sorted_hashes, dtype="<u8")
    n = int(arr.size)
    k = bucket_bits(n)
    prefixes = arr >> np.uint64(64 - k)
    buckets = np.searchsorted(prefixes, np.arange((1 << k) + 1, dtype=np.uint64), side="left")
    header = _HEADER.pack(
        MAGIC,
        LAYOUT,
        k,
        n,
        list_version,
        bytes.fromhex(store_id)[:16].ljust(16, b"\0"),
        index_key_id,
    ).ljust(HEADER_SIZE, b"\0")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(header)
            arr.tofile(fh)
            buckets.astype("<u4").tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def merge(base: np.ndarray, added: Iterable[int], removed: Iterable[int]) -> np.ndarray:
    """``(base | added) - removed`` as a new sorted unique uint64 array, in O(n) copies."""
    add = np.unique(np.fromiter(added, dtype=np.uint64))
    rem = np.unique(np.fromiter(removed, dtype=np.uint64))
    out = np.asarray(base, dtype=np.uint64)
    if add.size:
        add = add[~members(out, add)]
        out = np.insert(out, np.searchsorted(out, add), add)
    if rem.size:
        pos = np.searchsorted(out, rem)
        hit = members(out, rem)
        out = np.delete(out, pos[hit])
    return np.ascontiguousarray(out, dtype=np.uint64)


def members(sorted_arr: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """For each of ``probes``, whether it is in the sorted ``sorted_arr`` (binary search)."""
    pos = np.searchsorted(sorted_arr, probes)
    ok = pos < sorted_arr.size
    out = np.zeros(probes.size, dtype=bool)
    out[ok] = sorted_arr[pos[ok]] == probes[ok]
    return out


def sort_unique(hashes: np.ndarray) -> np.ndarray:
    """Sort in place and drop duplicates (two keys with one hash share a slot)."""
    hashes.sort()
    if hashes.size > 1:
        keep = np.empty(hashes.size, dtype=bool)
        keep[0] = True
        np.not_equal(hashes[1:], hashes[:-1], out=keep[1:])
        if not keep.all():
            hashes = hashes[keep]
    return hashes
