"""The delta file: keyed hashes added to and removed from a full list since its build.

Layout (little-endian)::

    offset size  field
    0      8     magic b"FTOFFLD1"
    8      2     layout version (1)
    10     2     reserved, 0
    12     4     header size (64)
    16     8     base version (the full list it applies to)
    24     8     version (the list version once applied)
    32     8     added count A
    40     8     removed count R
    48     8     key id of the offline-list key
    56     8     reserved, 0
    64     8*A   added hashes, sorted ascending, distinct (uint64)
    ...    8*R   removed hashes, sorted ascending, distinct (uint64)

A delta is always against the last full list (not chained), so a kiosk holds one full
list and at most one delta. Applied, it answers: in *added* -> listed; in *removed* -> not
listed (even if the filter says yes); otherwise the filter's answer.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

from firmware.offline.errors import ListFormatError

MAGIC = b"FTOFFLD1"
LAYOUT = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sHHIQQQQ8s8s")
assert _HEADER.size == HEADER_SIZE


@dataclass(frozen=True)
class DeltaHeader:
    base_version: int
    version: int
    added: int
    removed: int
    key_id: bytes

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + 8 * (self.added + self.removed)

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            LAYOUT,
            0,
            HEADER_SIZE,
            self.base_version,
            self.version,
            self.added,
            self.removed,
            self.key_id,
            bytes(8),
        )

    @classmethod
    def unpack(cls, data: bytes) -> DeltaHeader:
        if len(data) < HEADER_SIZE:
            raise ListFormatError(f"delta: {len(data)} bytes, shorter than the 64-byte header")
        magic, layout, res, hsize, base, version, a, r, kid, res2 = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ListFormatError("delta: bad magic at offset 0 (not an offline delta file)")
        if layout != LAYOUT:
            raise ListFormatError(f"delta: layout version {layout} at offset 8 is not {LAYOUT}")
        if hsize != HEADER_SIZE or res != 0 or res2 != bytes(8):
            raise ListFormatError("delta: header size (offset 12) or reserved bytes are wrong")
        if base >= version:
            raise ListFormatError("delta: base version (offset 16) is not older than version")
        return cls(base, version, a, r, kid)


class DeltaFile:
    """A delta file mapped read-only; membership by binary search in the mapped arrays."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if sys.byteorder != "little":  # pragma: no cover - every supported kiosk is LE
            raise ListFormatError("delta: needs a little-endian host")
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < HEADER_SIZE:
                raise ListFormatError(f"delta: {size} bytes, shorter than the 64-byte header")
            self._map = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
        try:
            self.header = h = DeltaHeader.unpack(self._map[:HEADER_SIZE])
            if size != h.file_size:
                raise ListFormatError(f"delta: file is {size} bytes, its header says {h.file_size}")
        except ListFormatError:
            self._map.close()
            raise
        self._all: memoryview | None = memoryview(self._map)[HEADER_SIZE:].cast("Q")
        self.added = self._all[: h.added]
        self.removed = self._all[h.added :]
        for name, arr in (("added", self.added), ("removed", self.removed)):
            if any(arr[i] >= arr[i + 1] for i in range(len(arr) - 1)):
                self.close()
                raise ListFormatError(f"delta: {name} hashes are not sorted and distinct")

    @staticmethod
    def _has(arr: memoryview, h: int) -> bool:
        i = bisect_left(arr, h)
        return i < len(arr) and arr[i] == h

    def answer(self, h: int) -> bool | None:
        """True if added, False if removed, None if the delta says nothing of ``h``."""
        if self._has(self.added, h):
            return True
        if self._has(self.removed, h):
            return False
        return None

    def close(self) -> None:
        """Release the map (idempotent)."""
        if self._all is not None:
            self.added.release()
            self.removed.release()
            self._all.release()
            self._all = None
            self._map.close()

    def __enter__(self) -> DeltaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def delta_bytes(
    *, base_version: int, version: int, added: list[int], removed: list[int], key_id: bytes
) -> bytes:
    """A delta file; ``added`` and ``removed`` are sorted here and must not overlap."""
    a, r = sorted(set(added)), sorted(set(removed))
    if set(a) & set(r):
        raise ValueError("a hash cannot be both added and removed")
    head = DeltaHeader(base_version, version, len(a), len(r), key_id).pack()
    return head + struct.pack(f"<{len(a)}Q", *a) + struct.pack(f"<{len(r)}Q", *r)
