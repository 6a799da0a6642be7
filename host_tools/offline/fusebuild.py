"""Build a (sharded) binary fuse filter file with the reference C code (PyPI ``pyfusefilter``).

Only the C layer is used (``pyfusefilter._xorfilter``, cffi): its Python classes hash
``str(item)`` and break with xxhash 4, and our keys are already 64-bit keyed hashes.
The result is written in the layout of :mod:`firmware.offline.fusefile`.

Keys are split by their top bits into shards of at most :data:`SHARD_KEYS` keys (about
4 M): one C filter per shard, populated on up to two threads (cffi releases the GIL
while the C code runs). On this machine 100 M keys take about 65 s as one filter, whose
construction's random accesses leave the caches, and about 6 s as 32 shards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import numpy as np

from firmware.errors import OperationError, SetupError
from firmware.offline.fusefile import FINGERPRINT_BITS, MAX_SHARD_BITS, FuseHeader, Shard

MAX_KEYS = 0xFFFFFFFF  # the C code counts keys in a uint32, per shard
SHARD_KEYS = 1 << 22  # keys per shard at most, for the default shard bits


def _c() -> tuple[Any, Any]:
    try:
        from pyfusefilter._xorfilter import ffi, lib  # noqa: PLC0415
    except ImportError as exc:
        raise SetupError(
            f"building an offline list needs pyfusefilter (the `server` extra): {exc}"
        ) from exc
    return lib, ffi


def shard_bits_for(n: int) -> int:
    """The fewest shard bits that keep every shard (on average) at most :data:`SHARD_KEYS`."""
    bits = 0
    while (n >> bits) > SHARD_KEYS and bits < MAX_SHARD_BITS:
        bits += 1
    return bits


def split(keys: np.ndarray, shard_bits: int) -> list[np.ndarray]:
    """Sorted distinct uint64 ``keys`` cut (without copies) into ``2^shard_bits`` slices by
    their top ``shard_bits`` bits."""
    if shard_bits == 0:
        return [keys]
    starts = np.arange(1, 1 << shard_bits, dtype=np.uint64) << np.uint64(64 - shard_bits)
    cuts = [0, *np.searchsorted(keys, starts).tolist(), int(keys.size)]
    return [keys[a:b] for a, b in pairwise(cuts)]


def _sorted(keys: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(keys, dtype=np.uint64)
    if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):
        arr = np.unique(arr)
    return arr


class CFilters:
    """The populated C filters of one list, one per shard (free with :meth:`free`)."""

    def __init__(self, bits: int, shard_bits: int, filters: list[Any]):
        self.bits = bits
        self.shard_bits = shard_bits
        self.filters = filters
        self._shift = 64 - shard_bits
        lib, self._ffi = _c()
        self._contain = getattr(lib, f"binary_fuse{bits}_contain")
        self._free = getattr(lib, f"binary_fuse{bits}_free")

    def contains(self, key: int) -> bool:
        """The C library's answer for one key (tests and benchmarks compare against it)."""
        return bool(self._contain(key, self.filters[key >> self._shift]))

    def header(self, key_id: bytes) -> FuseHeader:
        """Our file header (and shard table) for these filters."""
        shards = tuple(
            Shard(
                seed=int(f.Seed),
                size=int(f.Size),
                segment_length=int(f.SegmentLength),
                segment_count=int(f.SegmentCount),
                segment_count_length=int(f.SegmentCountLength),
                array_length=int(f.ArrayLength),
            )
            for f in self.filters
        )
        return FuseHeader(
            fingerprint_bits=self.bits,
            shard_bits=self.shard_bits,
            records=sum(s.size for s in shards),
            key_id=key_id,
            shards=shards,
        ).check()

    def fingerprints(self) -> Iterator[memoryview]:
        """Each shard's fingerprint array, without a copy (valid while the filters live)."""
        fb = self.bits // 8
        for f in self.filters:
            yield memoryview(self._ffi.buffer(f.Fingerprints, int(f.ArrayLength) * fb))

    def file_bytes(self, key_id: bytes) -> bytes:
        """The whole filter file: header, shard table, padded fingerprint arrays."""
        header = self.header(key_id)
        out = bytearray(header.file_size)
        head = header.pack()
        out[: len(head)] = head
        for at, fp in zip(header.offsets(), self.fingerprints(), strict=True):
            out[at : at + fp.nbytes] = fp
        return bytes(out)

    def free(self) -> None:
        while self.filters:
            self._free(self.filters.pop())


def _populate(bits: int, keys: np.ndarray) -> Any:
    lib, ffi = _c()
    n = int(keys.size)
    if n > MAX_KEYS:
        raise ValueError(f"{n} keys in one shard: a binary fuse filter holds at most {MAX_KEYS}")
    f = ffi.new(f"binary_fuse{bits}_t *")
    if not getattr(lib, f"binary_fuse{bits}_allocate")(n, f):
        raise OperationError(f"binary_fuse{bits}_allocate({n}) failed: out of memory")
    ptr = ffi.cast("uint64_t *", ffi.from_buffer(keys)) if n else ffi.NULL
    if not getattr(lib, f"binary_fuse{bits}_populate")(ptr, n, f):
        getattr(lib, f"binary_fuse{bits}_free")(f)
        raise OperationError(f"binary_fuse{bits}_populate({n}) failed (memory or duplicates)")
    return f


@contextmanager
def c_filters(
    keys: np.ndarray, bits: int = 8, *, shard_bits: int | None = None, workers: int | None = None
) -> Iterator[CFilters]:
    """Populated C filters over distinct uint64 ``keys`` (sorted here if they are not),
    ``shard_bits`` by :func:`shard_bits_for` unless given; freed on exit."""
    if bits not in FINGERPRINT_BITS:
        raise ValueError(f"fingerprint bits must be 8 or 16, not {bits}")
    arr = _sorted(keys)
    sb = shard_bits_for(int(arr.size)) if shard_bits is None else shard_bits
    if not 0 <= sb <= MAX_SHARD_BITS:
        raise ValueError(f"shard bits must be 0 to {MAX_SHARD_BITS}, not {sb}")
    parts = split(arr, sb)
    nw = workers or min(2, os.cpu_count() or 1)
    out = CFilters(bits, sb, [])
    try:
        if nw <= 1 or len(parts) == 1:
            out.filters.extend(_populate(bits, p) for p in parts)
        else:
            with ThreadPoolExecutor(nw, thread_name_prefix="fusebuild") as ex:
                futures = [ex.submit(_populate, bits, p) for p in parts]
            failed: BaseException | None = None
            for fut in futures:  # every one has finished: keep (to free) all that built
                exc = fut.exception()
                if exc is None:
                    out.filters.append(fut.result())
                failed = failed or exc
            if failed is not None:
                raise failed
        yield out
    finally:
        out.free()


def filter_bytes(
    keys: np.ndarray, *, bits: int = 8, key_id: bytes, shard_bits: int | None = None
) -> bytes:
    """A whole filter file over distinct uint64 ``keys``."""
    with c_filters(keys, bits, shard_bits=shard_bits) as cf:
        return cf.file_bytes(key_id)
