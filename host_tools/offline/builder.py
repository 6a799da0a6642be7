"""Build a full offline list (and deltas) from keyed hashes, signed by the regional.

``hash_store`` turns every record of the SLTD store into its keyed hash under the
offline-list key, in one consistent snapshot; ``build_full`` and ``build_delta`` make the
payload and the signed manifest; ``write_list_dir`` lays them out as a list directory
(firmware.offline.listdir) with each file written to a temporary name, fsynced and
renamed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline import listdir
from firmware.offline.delta import delta_bytes
from firmware.offline.fusefile import LAYOUT, FuseHeader
from firmware.offline.manifest import Manifest, chunk_hashes, sign_manifest
from host_tools.offline import fusebuild
from host_tools.sltd import index as ix
from host_tools.sltd.index import sort_unique
from host_tools.sltd.lookup import prekeyed_hasher
from host_tools.sltd.records import canonical_bytes
from host_tools.sltd.store import SltdStore

DEFAULT_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Built:
    """One built payload and its signed manifest."""

    manifest: Manifest
    manifest_bytes: bytes
    payload: bytes


def hash_store(store: SltdStore, list_key: bytes) -> tuple[int, np.ndarray]:
    """``(list version, sorted distinct uint64 keyed hashes)`` of every record."""
    h = prekeyed_hasher(list_key)
    parts: list[np.ndarray] = []
    with store.key_snapshot() as (version, batches):
        for batch in batches:
            parts.append(
                np.fromiter(
                    (h(canonical_bytes(s, c, n)) for s, c, n in batch), np.uint64, len(batch)
                )
            )
    arr = np.concatenate(parts) if parts else np.empty(0, np.uint64)
    return version, sort_unique(arr)


def _sign(key: Ed25519PrivateKey, payload: bytes, chunk_size: int, **fields: object) -> Built:
    m = Manifest(
        size=len(payload),
        chunk_size=chunk_size,
        chunks=tuple(chunk_hashes(payload, chunk_size)),
        **fields,  # type: ignore[arg-type]
    )
    data = sign_manifest(key, m)
    return Built(Manifest.from_body(m.body()), data, payload)


def build_full(
    keys: np.ndarray,
    *,
    region: str,
    version: int,
    sign_key: Ed25519PrivateKey,
    key_id: bytes,
    bits: int = 8,
    chunk_size: int = DEFAULT_CHUNK,
    created: float | None = None,
    shard_bits: int | None = None,
) -> Built:
    """The filter file over distinct uint64 ``keys`` and its signed full manifest
    (``shard_bits``: :func:`fusebuild.shard_bits_for` the key count unless given)."""
    payload = fusebuild.filter_bytes(keys, bits=bits, key_id=key_id, shard_bits=shard_bits)
    h = FuseHeader.unpack(payload)
    filt = {
        "type": "binary_fuse",
        "layout": LAYOUT,
        "fingerprint_bits": bits,
        "arity": 3,
        "key_id": key_id.hex(),
        "shard_bits": h.shard_bits,
    }
    return _sign(
        sign_key, payload, chunk_size,
        region=region, version=version, kind="full", base_version=None,
        records=h.records, filter=filt,
        created=round(time.time() if created is None else created, 3),
    )  # fmt: skip


def sorted_diff(
    old: np.ndarray, new: np.ndarray, chunk: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """``(in new not old, in old not new)`` for two sorted distinct uint64 arrays, by binary
    search in slices of ``chunk`` (no concatenated or sorted copy of both, as
    ``np.setdiff1d`` makes). The publisher's fall-back when no change log reaches back."""

    def missing(hay: np.ndarray, probes: np.ndarray) -> np.ndarray:
        parts = [
            p[~ix.members(hay, p)]
            for p in (probes[i : i + chunk] for i in range(0, probes.size, chunk))
        ]
        return np.concatenate(parts) if parts else np.empty(0, np.uint64)

    return missing(old, new), missing(new, old)


def build_delta(
    added: np.ndarray,
    removed: np.ndarray,
    *,
    records: int,
    region: str,
    base_version: int,
    version: int,
    sign_key: Ed25519PrivateKey,
    key_id: bytes,
    chunk_size: int = DEFAULT_CHUNK,
    created: float | None = None,
) -> Built:
    """The delta that turns the full list ``base_version`` into a list of ``records``
    records: the keyed hashes ``added`` to it and ``removed`` from it (sorted, distinct)."""
    payload = delta_bytes(
        base_version=base_version,
        version=version,
        added=[int(x) for x in added],
        removed=[int(x) for x in removed],
        key_id=key_id,
    )
    filt = {
        "type": "delta",
        "key_id": key_id.hex(),
        "added": len(added),
        "removed": len(removed),
    }
    return _sign(
        sign_key, payload, chunk_size,
        region=region, version=version, kind="delta", base_version=base_version,
        records=records, filter=filt,
        created=round(time.time() if created is None else created, 3),
    )  # fmt: skip


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_list_dir(out: str | Path, full: Built, delta: Built | None = None) -> Path:
    """Lay out a list directory: payloads first, manifests last (a reader that finds a
    manifest finds its payload). Removes a stale delta when ``delta`` is None."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    if delta is None:
        (d / listdir.DELTA_MANIFEST).unlink(missing_ok=True)
        (d / listdir.DELTA).unlink(missing_ok=True)
    _write_atomic(d / listdir.FILTER, full.payload)
    _write_atomic(d / listdir.MANIFEST, full.manifest_bytes)
    if delta is not None:
        _write_atomic(d / listdir.DELTA, delta.payload)
        _write_atomic(d / listdir.DELTA_MANIFEST, delta.manifest_bytes)
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return d
