"""Keys and lists for the offline-list tests: real Ed25519 keys, real C-built filters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline.listkey import key_id
from firmware.offline.store import OfflineStore
from host_tools.offline.builder import Built, build_delta, build_full


@dataclass
class ListMaker:
    """A region's signing key and offline-list key, and lists built with them."""

    region: str = "central"
    sign_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    list_key: bytes = field(default_factory=lambda: os.urandom(32))

    @property
    def key_id(self) -> bytes:
        return key_id(self.list_key)

    def keys(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.unique(rng.integers(0, 2**64, size=n, dtype=np.uint64))

    def full(self, keys: np.ndarray, version: int, **kw: object) -> Built:
        kw.setdefault("region", self.region)
        kw.setdefault("sign_key", self.sign_key)
        kw.setdefault("key_id", self.key_id)
        return build_full(keys, version=version, **kw)  # type: ignore[arg-type]

    def delta(self, base: np.ndarray, new: np.ndarray, base_version: int, version: int) -> Built:
        old_set, new_set = {int(k) for k in base}, {int(k) for k in new}  # not the code's diff
        added = np.array(sorted(new_set - old_set), dtype=np.uint64)
        removed = np.array(sorted(old_set - new_set), dtype=np.uint64)
        return build_delta(
            added, removed, records=len(new_set), region=self.region,
            base_version=base_version, version=version,
            sign_key=self.sign_key, key_id=self.key_id, chunk_size=512,
        )  # fmt: skip

    def store(self, root: Path) -> OfflineStore:
        return OfflineStore(
            root, region=self.region, sign_public=self.sign_key.public_key(), key_id=self.key_id
        )


def install(store: OfflineStore, built: Built) -> None:
    """Fetch every chunk of ``built`` into ``store`` and swap it in."""
    dl = store.begin(built.manifest_bytes)
    for i in dl.missing():
        s, e = dl.manifest.chunk_span(i)
        dl.put(i, built.payload[s:e])
    dl.install().close()


@pytest.fixture
def maker() -> ListMaker:
    return ListMaker()
