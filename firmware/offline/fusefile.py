"""The offline filter file: binary fuse filters whose mapped bytes are the filters themselves.

A list of N keys is split by the top ``shard bits`` of each key into ``2^shard_bits`` shards,
each an independent binary fuse filter built by the reference C code. Sharding keeps each
filter's construction inside the caches (one 100 M-key filter takes about 65 s to build
here, 32 shards of ~3 M take about 6 s in all, at 9.02 instead of 9.01 bits per key) and
costs a lookup one shift and one table entry.

Layout (little-endian; every fingerprint array starts 8-byte aligned, so a map can be read
as ``uint8``/``uint16`` in place)::

    offset size  field
    0      8     magic b"FTOFFLF2"
    8      2     layout version (2)
    10     1     fingerprint bits: 8 or 16
    11     1     arity: 3
    12     4     header size in bytes (64)
    16     8     records: distinct keys in all shards
    24     1     shard bits S (0 to 12): a key's shard is its top S bits
    25     7     reserved, 0
    32     8     key id: names the offline-list key (see ``listkey.key_id``)
    40     24    reserved, 0
    64     32*2^S shard table, one entry per shard, in shard order:
                   0  8  seed
                   8  4  size: keys in this shard
                   12 4  segment length (a power of two)
                   16 4  segment count
                   20 4  segment count length (= segment count * segment length)
                   24 4  array length (= (segment count + 2) * segment length)
                   28 4  reserved, 0
    ...          each shard's array length fingerprints of 1 or 2 bytes, in shard order,
                 each array padded with zeros to a multiple of 8 bytes

A shard's fields are those of the reference C code's ``binary_fuse8_t``/``binary_fuse16_t``
(FastFilter/xor_singleheader, ``binaryfusefilter.h``), which the regional uses to build it
(``host_tools.offline.fusebuild``). :meth:`FuseFilterFile.contains` is our own
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

MAGIC = b"FTOFFLF2"
LAYOUT = 2
HEADER_SIZE = 64
SHARD_ENTRY_SIZE = 32
MAX_SHARD_BITS = 12
ARITY = 3
FINGERPRINT_BITS = (8, 16)
_HEADER = struct.Struct("<8sHBBIQB7s8s24s")
_SHARD = struct.Struct("<QIIIIII")
assert _HEADER.size == HEADER_SIZE and _SHARD.size == SHARD_ENTRY_SIZE

_M64 = 0xFFFFFFFFFFFFFFFF


def _pad8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class Shard:
    """The parameters of one shard's binary fuse filter."""

    seed: int
    size: int
    segment_length: int
    segment_count: int
    segment_count_length: int
    array_length: int

    def pack(self) -> bytes:
        return _SHARD.pack(
            self.seed,
            self.size,
            self.segment_length,
            self.segment_count,
            self.segment_count_length,
            self.array_length,
            0,
        )

    def check(self, index: int) -> Shard:
        """``self`` if its fields agree with each other; :class:`ListFormatError` naming the
        shard and the first field that does not."""
        sl, at = self.segment_length, f"filter: shard {index}"
        if sl <= 0 or sl & (sl - 1):
            raise ListFormatError(f"{at}: segment length {sl} is not a power of two")
        if self.segment_count < 1:
            raise ListFormatError(f"{at}: segment count is 0")
        if self.segment_count_length != self.segment_count * sl:
            raise ListFormatError(f"{at}: segment count length != segment count * length")
        if self.array_length != (self.segment_count + ARITY - 1) * sl:
            raise ListFormatError(f"{at}: array length != (segment count + 2) * length")
        return self


@dataclass(frozen=True)
class FuseHeader:
    """A filter file's header and shard table, validated for consistency."""

    fingerprint_bits: int
    shard_bits: int
    records: int
    key_id: bytes
    shards: tuple[Shard, ...]

    @property
    def fingerprint_bytes(self) -> int:
        return self.fingerprint_bits // 8

    @property
    def table_end(self) -> int:
        """Where the first shard's fingerprints start."""
        return HEADER_SIZE + SHARD_ENTRY_SIZE * len(self.shards)

    def offsets(self) -> list[int]:
        """Byte offset in the file of each shard's fingerprints."""
        out, at = [], self.table_end
        for s in self.shards:
            out.append(at)
            at += _pad8(s.array_length * self.fingerprint_bytes)
        return out

    @property
    def file_size(self) -> int:
        """Header, table and padded fingerprints: the exact size of a valid file."""
        fb = self.fingerprint_bytes
        return self.table_end + sum(_pad8(s.array_length * fb) for s in self.shards)

    def pack(self) -> bytes:
        """The header and the shard table (what precedes the fingerprints)."""
        head = _HEADER.pack(
            MAGIC, LAYOUT, self.fingerprint_bits, ARITY, HEADER_SIZE, self.records,
            self.shard_bits, bytes(7), self.key_id, bytes(24),
        )  # fmt: skip
        return head + b"".join(s.pack() for s in self.shards)

    def check(self) -> FuseHeader:
        """``self`` if the fields agree with each other; :class:`ListFormatError` naming
        the first field that does not."""
        if self.fingerprint_bits not in FINGERPRINT_BITS:
            raise ListFormatError(f"filter: fingerprint bits {self.fingerprint_bits} not 8 or 16")
        if not 0 <= self.shard_bits <= MAX_SHARD_BITS:
            raise ListFormatError(f"filter: shard bits {self.shard_bits} not 0 to {MAX_SHARD_BITS}")
        if len(self.shards) != 1 << self.shard_bits:
            raise ListFormatError(f"filter: {len(self.shards)} shards, shard bits say more")
        if len(self.key_id) != 8:
            raise ListFormatError("filter: key id must be 8 bytes")
        for i, s in enumerate(self.shards):
            s.check(i)
        if sum(s.size for s in self.shards) != self.records:
            raise ListFormatError(f"filter: records {self.records} != the shards' sizes summed")
        return self

    @classmethod
    def unpack(cls, data: bytes) -> FuseHeader:
        """Parse and check the header and shard table; :class:`ListFormatError` naming the
        field and its offset."""
        if len(data) < HEADER_SIZE:
            raise ListFormatError(f"filter: {len(data)} bytes, shorter than the 64-byte header")
        (magic, layout, bits, arity, hsize, records, sbits, res, kid, res2) = _HEADER.unpack_from(
            data
        )
        if magic != MAGIC:
            raise ListFormatError("filter: bad magic at offset 0 (not an offline filter file)")
        if layout != LAYOUT:
            raise ListFormatError(f"filter: layout version {layout} at offset 8 is not {LAYOUT}")
        if arity != ARITY:
            raise ListFormatError(f"filter: arity {arity} at offset 11 is not {ARITY}")
        if hsize != HEADER_SIZE:
            raise ListFormatError(f"filter: header size {hsize} at offset 12 is not 64")
        if res != bytes(7) or res2 != bytes(24):
            raise ListFormatError("filter: reserved header bytes (offset 25 or 40) are not 0")
        if sbits > MAX_SHARD_BITS:
            raise ListFormatError(f"filter: shard bits {sbits} at offset 24 over {MAX_SHARD_BITS}")
        end = HEADER_SIZE + SHARD_ENTRY_SIZE * (1 << sbits)
        if len(data) < end:
            raise ListFormatError(f"filter: {len(data)} bytes, shorter than its shard table")
        shards = []
        for i in range(1 << sbits):
            at = HEADER_SIZE + i * SHARD_ENTRY_SIZE
            *fields, reserved = _SHARD.unpack_from(data, at)
            if reserved:
                raise ListFormatError(f"filter: shard {i}: reserved bytes at offset {at + 28}")
            shards.append(Shard(*fields))
        return cls(bits, sbits, records, kid, tuple(shards)).check()


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
            sbits = self._map[24] if size > 24 else 0
            table = HEADER_SIZE + SHARD_ENTRY_SIZE * (1 << min(sbits, MAX_SHARD_BITS))
            self.header = FuseHeader.unpack(self._map[: min(size, table)])
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
        self._view: memoryview | None = memoryview(self._map)
        fb = h.fingerprint_bytes
        if fb == 2:
            if sys.byteorder != "little":  # pragma: no cover - every supported kiosk is LE
                raise ListFormatError("filter: 16-bit fingerprints need a little-endian host")
            self._fp: memoryview = self._view.cast("H")
        else:
            self._fp = self._view
        self._fmask = (1 << h.fingerprint_bits) - 1
        self._shift = 64 - h.shard_bits  # key >> 64 is 0: one shard
        self._shards = tuple(
            (s.seed, s.segment_length, s.segment_length - 1, s.segment_count_length, at // fb)
            for s, at in zip(h.shards, h.offsets(), strict=True)
        )
        self.release_pages()  # reading the header may have mapped a whole page-cache folio

    def contains(self, key: int) -> bool:
        """True if ``key`` (a 64-bit keyed hash) may be in the set: always for members,
        for about 2^-bits of the others. Same answer as the C ``binary_fuse*_contain`` on
        the key's shard."""
        seed, sl, mask, scl, base = self._shards[key >> self._shift]
        h = _mix(key, seed)
        f = (h ^ (h >> 32)) & self._fmask
        h0 = (h * scl) >> 64
        h1 = (h0 + sl) ^ ((h >> 18) & mask)
        h2 = (h0 + 2 * sl) ^ (h & mask)
        fp = self._fp
        return f ^ fp[base + h0] ^ fp[base + h1] ^ fp[base + h2] == 0

    def release_pages(self) -> None:
        """Drop the pages lookups touched from this process's resident set (they stay in
        the page cache). A lookup touches at most 3 pages; the agent calls this after each
        scan so a large list never accumulates in its RSS."""
        if self._view is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def __len__(self) -> int:
        return self.header.records

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
