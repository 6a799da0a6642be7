"""The regional's record of what it published, so a restart republishes the same bytes.

A directory (``regional-offline-list/`` beside the replay DB) holds the current full list
and delta as a list directory (:func:`builder.write_list_dir`), the full list's keyed
hashes (``base-keys.npy``, to make the next delta against it), ``store-version.json`` (the
store version the latest list reflects) and ``retained.json``: every
topic this region holds a retained list message on, so chunks of lists no longer
referenced are cleared even when a process died between publishing and clearing.

The state is written before anything is published (a kiosk can only ever see what is on
disk here) and is verified when read back: a damaged or foreign state is ignored (logged)
and the regional starts over with a new full list.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.errors import EnvelopeError
from firmware.offline import listdir
from firmware.offline.manifest import verify_manifest
from host_tools.offline.builder import Built, write_list_dir

log = logging.getLogger(__name__)

BASE_KEYS = "base-keys.npy"
RETAINED = "retained.json"
STORE_VERSION = "store-version.json"


@dataclass(frozen=True)
class Published:
    """The lists last published: a full list, its keyed hashes, and maybe a delta on it."""

    full: Built
    base_keys: np.ndarray
    delta: Built | None
    store_version: int | None = None  # the store version the latest list reflects

    @property
    def latest(self) -> Built:
        return self.delta or self.full


class PublishedState:
    """Reads and writes the state directory ``path``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def save(self, pub: Published) -> None:
        """Write the lists (payloads before manifests, each fsynced and renamed)."""
        self.path.mkdir(mode=0o750, parents=True, exist_ok=True)
        keys_file = self.path / BASE_KEYS
        if not _same_base(self.path, pub.full):
            tmp = self.path / f".{BASE_KEYS}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(pub.base_keys, dtype=np.uint64))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, keys_file)
        write_list_dir(self.path, pub.full, pub.delta)
        tmp = self.path / f".{STORE_VERSION}.tmp"
        tmp.write_text(json.dumps({"store_version": pub.store_version}))
        os.replace(tmp, self.path / STORE_VERSION)

    def load(self, sign_public: Ed25519PublicKey, region: str, key_id: bytes) -> Published | None:
        """The last publication if it is whole and verifies, else None."""
        if not (self.path / listdir.MANIFEST).is_file():
            return None
        try:
            full = _built(
                self.path, listdir.MANIFEST, listdir.FILTER, sign_public, region=region, kid=key_id
            )
            keys = np.load(self.path / BASE_KEYS, allow_pickle=False)
            if keys.dtype != np.uint64 or keys.size != full.manifest.records:
                raise EnvelopeError(f"{BASE_KEYS}: does not match the full list")
            delta = None
            if (self.path / listdir.DELTA_MANIFEST).is_file():
                delta = _built(
                    self.path,
                    listdir.DELTA_MANIFEST,
                    listdir.DELTA,
                    sign_public,
                    region=region,
                    kid=key_id,
                )
                if delta.manifest.base_version != full.manifest.version:
                    delta = None
        except (OSError, ValueError, EnvelopeError) as exc:
            log.warning("offline list: ignoring the published state in %s: %s", self.path, exc)
            return None
        return Published(full, keys, delta, _store_version(self.path))

    def retained(self) -> set[str]:
        """Topics that hold (or may hold) a retained list message of this region."""
        try:
            data = json.loads((self.path / RETAINED).read_text())
        except (OSError, ValueError):
            return set()
        return {t for t in data if isinstance(t, str)} if isinstance(data, list) else set()

    def set_retained(self, topics: set[str]) -> None:
        self.path.mkdir(mode=0o750, parents=True, exist_ok=True)
        tmp = self.path / f".{RETAINED}.tmp"
        tmp.write_text(json.dumps(sorted(topics)))
        os.replace(tmp, self.path / RETAINED)


def _store_version(path: Path) -> int | None:
    try:
        v = json.loads((path / STORE_VERSION).read_text()).get("store_version")
    except (OSError, ValueError, AttributeError):
        return None
    return v if isinstance(v, int) else None


def _same_base(path: Path, full: Built) -> bool:
    try:
        return (path / listdir.MANIFEST).read_bytes() == full.manifest_bytes and (
            path / BASE_KEYS
        ).is_file()
    except OSError:
        return False


def _built(
    d: Path, manifest: str, payload: str, sign_public: Ed25519PublicKey, *, region: str, kid: bytes
) -> Built:
    data = (d / manifest).read_bytes()
    m = verify_manifest(sign_public, data, region)
    m.check_key(kid)
    listdir.verify_payload(m, d / payload)
    return Built(m, data, (d / payload).read_bytes())
