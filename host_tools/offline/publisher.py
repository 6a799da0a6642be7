"""When the regional publishes a full list and when a delta (issue 12, item 3), without MQTT.

Every ``delta_interval`` (default 15 minutes) the regional hashes its store and calls
:meth:`ListPublisher.update`. The answer is a new full list (the first time, when the
delta against the last full list has grown past ``max_delta_fraction`` of it or
``max_delta_changes``, or when the full list is older than ``rebuild_after``, default a
day), or a delta against the last full list. A delta is made even when the store has not
changed (then it is empty) once the last list is ``refresh_after`` old (default 15
minutes): its new ``created`` time is what tells a kiosk that its copy is current, so a
quiet store never leaves kiosks with a stale list. A call with the store unchanged and the
last list younger than that makes nothing.

The **list version** is the list's own, not the store's: strictly increasing and at least
the build's unix time in seconds, so it keeps increasing across a restart even if the
publisher's saved state is lost (a kiosk refuses a version not newer than the one it
holds). The transport (retained manifests and chunks on the list topics) is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.offline.builder import DEFAULT_CHUNK, Built, build_delta, build_full, sorted_diff

#: ``changes(store_version)``: (entered, left) sorted hashes since then, or None
Changes = Callable[[int], tuple[np.ndarray, np.ndarray] | None]


@dataclass(frozen=True)
class PublishPolicy:
    delta_interval: float = 15 * 60.0
    refresh_after: float = 15 * 60.0
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
        self.base_store_version: int | None = None  # the store version the base was built at
        self.version = 0  # the last list version made (full or delta)
        self.store_version: int | None = None  # the store version that list reflects
        self.created = 0.0  # when that list was made

    def next_version(self, now: float) -> int:
        """The version of a list made at ``now``: newer than every earlier one."""
        return max(self.version + 1, int(now))

    def update(
        self,
        store_version: int,
        keys: np.ndarray,
        *,
        version: int | None = None,
        changes: Changes | None = None,
    ) -> Publication | None:
        """``keys``: sorted distinct keyed hashes of the store at ``store_version`` (not
        edited in place afterwards: the base list keeps a reference). None when the store
        has not moved and the last list is younger than ``refresh_after``. ``version``
        forces the new list's version (a caller with its own numbering, such as a test);
        it must still be newer than the last one. ``changes(v)``, where the caller keeps a
        change log (:meth:`KeyedHashes.changes_since`), gives the hashes that entered and
        left since store version ``v``, or None; without it (or with None) the delta is a
        difference of the base's keys and ``keys``."""
        now = self._clock()
        if store_version == self.store_version and now - self.created < self.policy.refresh_after:
            return None
        if version is not None and version <= self.version:
            raise ValueError(f"list version {version} is not newer than {self.version}")
        version = self.next_version(now) if version is None else version
        self.store_version = store_version
        self.created = now
        if self.base is None or now - self.base.manifest.created >= self.policy.rebuild_after:
            return self._full(version, keys, now, store_version)
        drift = None
        if changes is not None and self.base_store_version is not None:
            drift = changes(self.base_store_version)
        added, removed = drift if drift is not None else sorted_diff(self._base_keys, keys)
        limit = min(
            self.policy.max_delta_changes,
            max(1, int(self.policy.max_delta_fraction * max(self._base_keys.size, 1))),
        )
        if added.size + removed.size > limit:
            return self._full(version, keys, now, store_version)
        delta = build_delta(
            added,
            removed,
            records=int(keys.size),
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

    def restore(
        self, base: Built, base_keys: np.ndarray, latest: Built, store_version: int | None = None
    ) -> None:
        """Carry on after a restart from the full list ``base`` (over ``base_keys``) and the
        last list published on it (``base`` itself, or a delta), which reflected the store
        at ``store_version`` (None: unknown, so the next :meth:`update` makes a list), so
        the next list is a delta against the list kiosks already hold."""
        if base.manifest.kind != "full" or latest.manifest.version < base.manifest.version:
            raise ValueError("restore needs a full list and a latest list not older than it")
        self.base = base
        self._base_keys = np.asarray(base_keys, dtype=np.uint64)
        self.base_store_version = None  # unknown: the first delta is a difference
        self.version = latest.manifest.version
        self.created = latest.manifest.created
        self.store_version = store_version

    def _full(self, version: int, keys: np.ndarray, now: float, store_version: int) -> Publication:
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
        self._base_keys = np.asarray(keys, dtype=np.uint64)  # a reference, not a copy
        self.base_store_version = store_version
        self.version = version
        return Publication(self.base, None)
