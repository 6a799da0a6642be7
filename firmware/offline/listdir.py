"""A list directory, verified as a whole, and the lookups a kiosk makes in it.

A list directory (what ``fieldterm offline build --out DIR`` writes and what the kiosk's
store installs) holds::

    manifest.json   the signed manifest of the full list
    filter.ftol     the filter file it describes (firmware.offline.fusefile)
    delta.json      optional: the signed manifest of a delta against that full list
    delta.ftod      optional: the delta file it describes (firmware.offline.delta)

:func:`open_list` checks everything before it answers a single lookup: signatures under
the pinned regional key, region, the offline-list key's id, every chunk's SHA-256, and
that the filter's header is the one the manifest names.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.offline.delta import DeltaFile
from firmware.offline.errors import (
    ListBaseError,
    ListChunkError,
    ListFormatError,
    OfflineListError,
)
from firmware.offline.fusefile import LAYOUT, FuseFilterFile
from firmware.offline.listkey import list_hash
from firmware.offline.manifest import Manifest, verify_manifest
from firmware.protocol.dockey import DocumentKey

MANIFEST = "manifest.json"
FILTER = "filter.ftol"
DELTA_MANIFEST = "delta.json"
DELTA = "delta.ftod"


def verify_payload(manifest: Manifest, path: Path) -> None:
    """:class:`ListChunkError` naming the first chunk of ``path`` that the manifest does
    not describe (read with ``read()``, not mapped, so checking adds no resident pages)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ListChunkError(f"{path.name}: cannot read: {exc.strerror}") from exc
    with fh:
        for i, want in enumerate(manifest.chunks):
            start, end = manifest.chunk_span(i)
            data = fh.read(end - start)
            if len(data) != end - start:
                raise ListChunkError(f"{path.name}: chunk {i} is truncated")
            if hashlib.sha256(data).hexdigest() != want:
                raise ListChunkError(f"{path.name}: chunk {i}: SHA-256 differs from the manifest")
        if fh.read(1):
            raise ListChunkError(f"{path.name}: longer than the manifest's {manifest.size} bytes")


def check_filter_matches(manifest: Manifest, f: FuseFilterFile) -> None:
    """The filter header must be exactly what the signed manifest names."""
    h, p = f.header, manifest.filter
    seen = {
        "layout": LAYOUT,
        "fingerprint_bits": h.fingerprint_bits,
        "arity": 3,
        "key_id": h.key_id.hex(),
        "shard_bits": h.shard_bits,
    }
    for k, v in seen.items():
        if p[k] != v:
            raise ListFormatError(f"filter: header {k} {v!r} differs from the manifest's {p[k]!r}")
    if h.records != manifest.records:
        raise ListFormatError(
            f"filter: header records {h.records} differ from the manifest's {manifest.records}"
        )


class OfflineList:
    """A verified list, ready for lookups: the full filter and at most one delta."""

    def __init__(
        self,
        directory: Path,
        full: Manifest,
        filt: FuseFilterFile,
        delta_manifest: Manifest | None = None,
        delta: DeltaFile | None = None,
    ):
        self.directory = directory
        self.full = full
        self.filter = filt
        self.delta_manifest = delta_manifest
        self.delta = delta

    @property
    def manifest(self) -> Manifest:
        """The manifest that says what this list is now (the delta's, if one is applied)."""
        return self.delta_manifest or self.full

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def created(self) -> float:
        return float(self.manifest.created)

    @property
    def records(self) -> int:
        return self.manifest.records

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the regional built this version (never negative)."""
        return max(0.0, (time.time() if now is None else now) - self.created)

    def listed_hash(self, h: int) -> bool:
        """Is the keyed hash ``h`` listed? (Filter false positives: about 2^-bits.)"""
        if self.delta is not None:
            said = self.delta.answer(h)
            if said is not None:
                return said
        return self.filter.contains(h)

    def listed(self, list_key: bytes, dk: DocumentKey) -> bool:
        """Is the document listed? ``list_key`` is the offline-list key."""
        return self.listed_hash(list_hash(list_key, dk))

    def close(self) -> None:
        self.filter.close()
        if self.delta is not None:
            self.delta.close()

    def __enter__(self) -> OfflineList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(path: Path, sign_public: Ed25519PublicKey, region: str) -> Manifest:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ListFormatError(f"{path.name}: missing from {path.parent}") from None
    except OSError as exc:
        raise ListFormatError(f"{path.name}: cannot read: {exc.strerror}") from exc
    return verify_manifest(sign_public, data, region)


def open_list(
    directory: str | Path, sign_public: Ed25519PublicKey, region: str, key_id: bytes
) -> OfflineList:
    """Verify the list directory as a whole and map it; an :class:`OfflineListError`
    subclass (with its ``reason``) for the first thing that fails."""
    d = Path(directory)
    full = read_manifest(d / MANIFEST, sign_public, region)
    if full.kind != "full":
        raise ListFormatError(f"{MANIFEST}: is a {full.kind} manifest, expected full")
    full.check_key(key_id)
    verify_payload(full, d / FILTER)
    filt = FuseFilterFile(d / FILTER)
    try:
        check_filter_matches(full, filt)
        dm, delta = None, None
        if (d / DELTA_MANIFEST).exists():
            dm = read_manifest(d / DELTA_MANIFEST, sign_public, region)
            if dm.kind != "delta":
                raise ListFormatError(f"{DELTA_MANIFEST}: is a {dm.kind} manifest")
            dm.check_key(key_id)
            if dm.base_version != full.version:
                raise ListBaseError(
                    f"delta {dm.version} applies to list {dm.base_version}, not {full.version}"
                )
            verify_payload(dm, d / DELTA)
            delta = DeltaFile(d / DELTA)
            h = delta.header
            if (h.base_version, h.version, h.added, h.removed, h.key_id.hex()) != (
                dm.base_version,
                dm.version,
                dm.filter["added"],
                dm.filter["removed"],
                dm.filter["key_id"],
            ):
                delta.close()
                raise ListFormatError("delta: header differs from its manifest")
    except OfflineListError:
        filt.close()
        raise
    return OfflineList(d, full, filt, dm, delta)
