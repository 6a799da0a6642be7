"""Real offline lists for the agent's tests: built by the server's builder (the C fuse
filter), signed with a throwaway Ed25519 key, installed through the kiosk's OfflineStore."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline.fusefile import FuseFilterFile
from firmware.offline.listkey import key_id, list_hash
from firmware.offline.store import OfflineStore
from firmware.protocol.dockey import DocumentKey
from host_tools.offline.builder import Built, build_full

#: A document the test lists and one it does not (issuing state, category, number).
LISTED = ("UTO", "P", "L898902C3")
UNLISTED = ("UTO", "P", "X12345678")


@dataclass
class Region:
    """A region's signing key and offline-list key, and lists built with them."""

    name: str = "central"
    sign_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    list_key: bytes = field(default_factory=lambda: os.urandom(32))

    def store(self, root: Path) -> OfflineStore:
        s = OfflineStore(
            root,
            region=self.name,
            sign_public=self.sign_key.public_key(),
            key_id=key_id(self.list_key),
        )
        s.recover()
        return s

    def install(
        self,
        store: OfflineStore,
        version: int,
        *,
        listed: tuple[tuple[str, str, str], ...] = (LISTED,),
        created: float,
        filler: int = 2000,
        unlisted: tuple[tuple[str, str, str], ...] = (UNLISTED,),
    ) -> None:
        """Build a full list holding ``listed`` (and ``filler`` random hashes), created at
        wall time ``created``, and install it: chunk by chunk, then the atomic swap.

        The filler is redrawn until :data:`UNLISTED` is not one of the filter's false
        positives (about 1 in 256 each), so a test's ``unlisted`` documents really are."""
        absent = [list_hash(self.list_key, DocumentKey(*d)) for d in unlisted]
        for attempt in range(20):
            built = self._build(version, listed, created, filler, seed=attempt)
            probe_path = store.root / f".probe-{version}.ftol"
            store.root.mkdir(parents=True, exist_ok=True)
            probe_path.write_bytes(built.payload)
            probe = FuseFilterFile(probe_path)
            false_positive = any(probe.contains(h) for h in absent)
            probe.close()
            probe_path.unlink()
            if not false_positive:
                break
        dl = store.begin(built.manifest_bytes)
        for i in dl.missing():
            s, e = dl.manifest.chunk_span(i)
            dl.put(i, built.payload[s:e])
        dl.install().close()

    def _build(
        self,
        version: int,
        listed: tuple[tuple[str, str, str], ...],
        created: float,
        filler: int,
        seed: int,
    ) -> Built:
        rng = np.random.default_rng([version, seed])
        own = [list_hash(self.list_key, DocumentKey(*d)) for d in listed]
        keys = np.unique(
            np.concatenate(
                [
                    np.array(own, dtype=np.uint64),
                    rng.integers(0, 2**64, size=filler, dtype=np.uint64),
                ]
            )
        )
        built = build_full(
            keys,
            region=self.name,
            version=version,
            sign_key=self.sign_key,
            key_id=key_id(self.list_key),
            chunk_size=4096,
            created=created,
        )
        return built
