"""Build a binary fuse filter file with the reference C code (PyPI ``pyfusefilter``).

Only the C layer is used (``pyfusefilter._xorfilter``, cffi): its Python classes hash
``str(item)`` and break with xxhash 4, and our keys are already 64-bit keyed hashes.
The result is written in the layout of :mod:`firmware.offline.fusefile`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from firmware.errors import OperationError, SetupError
from firmware.offline.fusefile import FINGERPRINT_BITS, HEADER_SIZE, FuseHeader

MAX_KEYS = 0xFFFFFFFF  # the C code counts keys in a uint32


def _c() -> tuple[Any, Any]:
    try:
        from pyfusefilter._xorfilter import ffi, lib  # noqa: PLC0415
    except ImportError as exc:
        raise SetupError(
            f"building an offline list needs pyfusefilter (the `server` extra): {exc}"
        ) from exc
    return lib, ffi


@contextmanager
def c_filter(keys: np.ndarray, bits: int = 8) -> Iterator[Any]:
    """A populated C ``binary_fuse{bits}_t`` over distinct uint64 ``keys``, freed on exit."""
    if bits not in FINGERPRINT_BITS:
        raise ValueError(f"fingerprint bits must be 8 or 16, not {bits}")
    arr = np.ascontiguousarray(keys, dtype=np.uint64)
    n = int(arr.size)
    if n > MAX_KEYS:
        raise ValueError(f"{n} keys: a binary fuse filter holds at most {MAX_KEYS}")
    lib, ffi = _c()
    f = ffi.new(f"binary_fuse{bits}_t *")
    if not getattr(lib, f"binary_fuse{bits}_allocate")(n, f):
        raise OperationError(f"binary_fuse{bits}_allocate({n}) failed: out of memory")
    try:
        ptr = ffi.cast("uint64_t *", ffi.from_buffer(arr)) if n else ffi.NULL
        if not getattr(lib, f"binary_fuse{bits}_populate")(ptr, n, f):
            raise OperationError(f"binary_fuse{bits}_populate({n}) failed (memory or duplicates)")
        yield f
    finally:
        getattr(lib, f"binary_fuse{bits}_free")(f)


def c_contains(f: Any, key: int, bits: int = 8) -> bool:
    """The C library's answer for one key (tests and benchmarks compare against it)."""
    lib, _ = _c()
    return bool(getattr(lib, f"binary_fuse{bits}_contain")(key, f))


def header_of(f: Any, bits: int, key_id: bytes) -> FuseHeader:
    """Our file header for a populated C filter."""
    return FuseHeader(
        fingerprint_bits=bits,
        seed=int(f.Seed),
        size=int(f.Size),
        segment_length=int(f.SegmentLength),
        segment_count=int(f.SegmentCount),
        segment_count_length=int(f.SegmentCountLength),
        array_length=int(f.ArrayLength),
        key_id=key_id,
    ).check()


def fingerprints_of(f: Any, bits: int) -> memoryview:
    """The C filter's fingerprint array, without a copy (valid while ``f`` lives)."""
    _, ffi = _c()
    return memoryview(ffi.buffer(f.Fingerprints, int(f.ArrayLength) * (bits // 8)))


def filter_bytes(keys: np.ndarray, *, bits: int = 8, key_id: bytes) -> bytes:
    """A whole filter file (header + fingerprints) over distinct uint64 ``keys``."""
    with c_filter(keys, bits) as f:
        header = header_of(f, bits, key_id)
        out = header.pack() + bytes(fingerprints_of(f, bits))
    assert len(out) == header.file_size and HEADER_SIZE == 64
    return out
