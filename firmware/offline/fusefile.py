"""The offline filter file: a binary fuse filter whose mapped bytes are the filter itself.

Layout (little-endian; the fingerprints start 8-byte aligned, so a map can be read as
``uint8``/``uint16`` in place)::

    offset size  field
    0      8     magic b"FTOFFLF1"
    8      2     layout version (1)
    10     1     fingerprint bits: 8 or 16
    11     1     arity: 3
    12     4     header size in bytes (64)
    16     8     seed
    24     4     size: number of (distinct) keys the filter was built over
    28     4     segment length (a power of two)
    32     4     segment count
    36     4     segment count length (= segment count * segment length)
    40     4     array length (= (segment count + 2) * segment length)
    44     4     reserved, 0
    48     8     key id: names the offline-list key (see ``listkey.key_id``)
    56     8     reserved, 0
    64     ...   array length fingerprints of 1 or 2 bytes

The fields are those of the reference C code's ``binary_fuse8_t``/``binary_fuse16_t``
(FastFilter/xor_singleheader, ``binaryfusefilter.h``), which the regional uses to build the
filter (``host_tools.offline.fusebuild``). :meth:`FuseFilterFile.contains` is our own
implementation of its ``contain`` over the mapped bytes; golden vectors in
``tests/offline/golden`` pin that it answers exactly as the C library does.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware.offline.errors import ListFormatError

MAGIC = b"FTOFFLF1"
LAYOUT = 1
HEADER_SIZE = 64
ARITY = 3
FINGERPRINT_BITS = (8, 16)
_HEADER = struct.Struct("<8sHBBIQIIIIII8s8s")
assert _HEADER.size == HEADER_SIZE

_M64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class FuseHeader:
    """The parameters of one binary fuse filter, validated for consistency."""

    fingerprint_bits: int
    seed: int
    size: int
    segment_length: int
    segment_count: int
    segment_count_length: int
    array_length: int
    key_id: bytes

    @property
    def fingerprint_bytes(self) -> int:
        return self.fingerprint_bits // 8

    @property
    def file_size(self) -> int:
        """Header plus fingerprints: the exact size of a valid file."""
        return HEADER_SIZE + self.array_length * self.fingerprint_bytes

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            LAYOUT,
            self.fingerprint_bits,
            ARITY,
            HEADER_SIZE,
            self.seed,
            self.size,
            self.segment_length,
            self.segment_count,
            self.segment_count_length,
            self.array_length,
            0,
            self.key_id,
            bytes(8),
        )

    def check(self) -> FuseHeader:
        """``self`` if the parameters agree with each other; :class:`ListFormatError` naming
        the first field that does not."""
        sl = self.segment_length
        if self.fingerprint_bits not in FINGERPRINT_BITS:
            raise ListFormatError(f"filter: fingerprint bits {self.fingerprint_bits} not 8 or 16")
        if sl <= 0 or sl & (sl - 1):
            raise ListFormatError(f"filter: segment length {sl} is not a power of two")
        if self.segment_count < 1:
            raise ListFormatError("filter: segment count is 0")
        if self.segment_count_length != self.segment_count * sl:
            raise ListFormatError("filter: segment count length != segment count * length")
        if self.array_length != (self.segment_count + ARITY - 1) * sl:
            raise ListFormatError("filter: array length != (segment count + 2) * length")
        if len(self.key_id) != 8:
            raise ListFormatError("filter: key id must be 8 bytes")
        return self

    @classmethod
    def unpack(cls, data: bytes) -> FuseHeader:
        """Parse and check the 64-byte header; :class:`ListFormatError` naming the field."""
        if len(data) < HEADER_SIZE:
            raise ListFormatError(f"filter: {len(data)} bytes, shorter than the 64-byte header")
        (magic, layout, bits, arity, hsize, seed, size, sl, sc, scl, al, res, kid, res2) = (
            _HEADER.unpack_from(data)
        )
        if magic != MAGIC:
            raise ListFormatError("filter: bad magic at offset 0 (not an offline filter file)")
        if layout != LAYOUT:
            raise ListFormatError(f"filter: layout version {layout} at offset 8 is not {LAYOUT}")
        if arity != ARITY:
            raise ListFormatError(f"filter: arity {arity} at offset 11 is not {ARITY}")
        if hsize != HEADER_SIZE:
            raise ListFormatError(f"filter: header size {hsize} at offset 12 is not 64")
        if res != 0 or res2 != bytes(8):
            raise ListFormatError("filter: reserved header bytes (offset 44 or 56) are not 0")
        return cls(bits, seed, size, sl, sc, scl, al, kid).check()


def _mix(key: int, seed: int) -> int:
    """``binary_fuse_mix_split``: murmur64 finaliser of ``key + seed`` (mod 2^64)."""
    h = (key + seed) & _M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


class FuseFilterFile:
    """A filter file mapped read-only; :meth:`contains` touches three fingerprints per key.

    The map is shared with the page cache: the process's resident memory grows only by the
    pages a lookup touches. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ListFormatError(f"filter: cannot open {self.path.name}: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise ListFormatError(f"filter: {size} bytes, shorter than the 64-byte header")
            self._map = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            self.header = FuseHeader.unpack(self._map[:HEADER_SIZE])
            if size != self.header.file_size:
                raise ListFormatError(
                    f"filter: file is {size} bytes, its header says {self.header.file_size}"
                )
        except ListFormatError:
            self._map.close()
            raise
        if hasattr(mmap, "MADV_RANDOM"):  # no read-ahead or fault-around: 3 pages a lookup
            self._map.madvise(mmap.MADV_RANDOM)
        h = self.header
        self._view: memoryview | None = memoryview(self._map)[HEADER_SIZE:]
        if h.fingerprint_bits == 16:
            if sys.byteorder != "little":  # pragma: no cover - every supported kiosk is LE
                raise ListFormatError("filter: 16-bit fingerprints need a little-endian host")
            self._fp: memoryview = self._view.cast("H")
        else:
            self._fp = self._view
        self._fmask = (1 << h.fingerprint_bits) - 1
        self._params = (h.seed, h.segment_length, h.segment_length - 1, h.segment_count_length)
        self.release_pages()  # reading the header may have mapped a whole page-cache folio

    def contains(self, key: int) -> bool:
        """True if ``key`` (a 64-bit keyed hash) may be in the set: always for members,
        for about 2^-bits of the others. Same answer as the C ``binary_fuse*_contain``."""
        seed, sl, mask, scl = self._params
        h = _mix(key, seed)
        f = (h ^ (h >> 32)) & self._fmask
        h0 = (h * scl) >> 64
        h1 = (h0 + sl) ^ ((h >> 18) & mask)
        h2 = (h0 + 2 * sl) ^ (h & mask)
        fp = self._fp
        return f ^ fp[h0] ^ fp[h1] ^ fp[h2] == 0

    def release_pages(self) -> None:
        """Drop the pages lookups touched from this process's resident set (they stay in
        the page cache). A lookup touches at most 3 pages; the agent calls this after each
        scan so a large list never accumulates in its RSS."""
        if self._view is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def __len__(self) -> int:
        return self.header.size

    def close(self) -> None:
        """Release the map (idempotent)."""
        view = getattr(self, "_view", None)
        if view is not None:
            self._fp.release()
            if self._fp is not view:
                view.release()
            self._view = None
            self._map.close()

    def __enter__(self) -> FuseFilterFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
