"""When the regional publishes a full list and when a delta (issue 12, item 3), without MQTT.

Every ``delta_interval`` (default 15 minutes) the regional hashes its store and calls
:meth:`ListPublisher.update`. The answer is a new full list (the first time, when the
delta against the last full list has grown past ``max_delta_fraction`` of it or
``max_delta_changes``, or when the full list is older than ``rebuild_after``, default a
day), a delta against the last full list, or nothing when the version has not moved.
The transport (retained manifests and chunks on the list topics) is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.offline.builder import DEFAULT_CHUNK, Built, build_delta, build_full


@dataclass(frozen=True)
class PublishPolicy:
    delta_interval: float = 15 * 60.0
    rebuild_after: float = 86400.0
    max_delta_fraction: float = 0.05
    max_delta_changes: int = 1_000_000


@dataclass(frozen=True)
class Publication:
    """What to publish now: a new full list (and no delta) or a delta on the current one."""

    full: Built | None
    delta: Built | None


class ListPublisher:
    """Keeps the last full list's keys to make deltas against it."""

    def __init__(
        self,
        *,
        region: str,
        sign_key: Ed25519PrivateKey,
        key_id: bytes,
        bits: int = 8,
        chunk_size: int = DEFAULT_CHUNK,
        policy: PublishPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.region = region
        self._sign = sign_key
        self._key_id = key_id
        self.bits = bits
        self.chunk_size = chunk_size
        self.policy = policy or PublishPolicy()
        self._clock = clock
        self.base: Built | None = None
        self._base_keys = np.empty(0, np.uint64)
        self.version = 0  # the last version published (full or delta)

    def update(self, version: int, keys: np.ndarray) -> Publication | None:
        """``keys``: sorted distinct keyed hashes of list ``version``. None if unchanged."""
        if version <= self.version:
            return None
        now = self._clock()
        if self.base is None or now - self.base.manifest.created >= self.policy.rebuild_after:
            return self._full(version, keys, now)
        changes = int(
            np.setdiff1d(keys, self._base_keys, assume_unique=True).size
            + np.setdiff1d(self._base_keys, keys, assume_unique=True).size
        )
        limit = min(
            self.policy.max_delta_changes,
            max(1, int(self.policy.max_delta_fraction * max(self._base_keys.size, 1))),
        )
        if changes > limit:
            return self._full(version, keys, now)
        delta = build_delta(
            self._base_keys,
            keys,
            region=self.region,
            base_version=self.base.manifest.version,
            version=version,
            sign_key=self._sign,
            key_id=self._key_id,
            chunk_size=self.chunk_size,
            created=now,
        )
        self.version = version
        return Publication(None, delta)

    def restore(self, base: Built, base_keys: np.ndarray, version: int) -> None:
        """Carry on after a restart from the full list ``base`` (over ``base_keys``) and the
        last version published on it (``base``'s own, or a delta's), so the next
        :meth:`update` makes a delta against the list kiosks already hold."""
        if base.manifest.kind != "full" or version < base.manifest.version:
            raise ValueError("restore needs a full list and a version not older than it")
        self.base = base
        self._base_keys = np.array(base_keys, dtype=np.uint64, copy=True)
        self.version = version

    def _full(self, version: int, keys: np.ndarray, now: float) -> Publication:
        self.base = build_full(
            keys,
            region=self.region,
            version=version,
            sign_key=self._sign,
            key_id=self._key_id,
            bits=self.bits,
            chunk_size=self.chunk_size,
            created=now,
        )
        self._base_keys = np.array(keys, dtype=np.uint64, copy=True)
        self.version = version
        return Publication(self.base, None)
