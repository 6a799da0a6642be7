"""The offline list's keyed hashes of an SLTD store, kept current as records change.

    hashes = KeyedHashes(store, list_key)
    version, keys = hashes.current()   # sorted distinct uint64, ready for ListPublisher

The first :meth:`KeyedHashes.current` hashes every record once (:func:`builder.hash_store`);
later calls apply only the store's change log since then (``changes_since``), as the
regional's index refresh does, so a publication every 15 minutes costs the changes, not
the whole store. A bulk load (the change log no longer reaches back) rehashes everything.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from host_tools.offline.builder import hash_store
from host_tools.sltd import index as ix
from host_tools.sltd.lookup import prekeyed_hasher
from host_tools.sltd.records import canonical_bytes
from host_tools.sltd.store import SltdStore, StaleChangeLog

log = logging.getLogger(__name__)


class KeyedHashes:
    """Keyed hashes (under the offline-list key) of every record of ``store``."""

    def __init__(self, store: SltdStore, list_key: bytes):
        self.store = store
        self._hash = prekeyed_hasher(list_key)
        self._list_key = list_key
        self._lock = threading.Lock()
        self.version = -1  # nothing hashed yet
        self._keys = np.empty(0, np.uint64)
        self.full_hashes = 0  # how many times every record was hashed (tests, health)

    def current(self) -> tuple[int, np.ndarray]:
        """``(list version, sorted distinct keyed hashes)`` of the store now."""
        with self._lock:
            if self.version < 0:
                self._rehash()
            else:
                try:
                    version, changes = self.store.changes_since(self.version)
                except StaleChangeLog:
                    log.info("offline list: the SLTD store was bulk-loaded; rehashing it")
                    self._rehash()
                else:
                    if version != self.version:
                        self._apply(changes)
                        self.version = version
            return self.version, self._keys

    def _rehash(self) -> None:
        self.version, self._keys = hash_store(self.store, self._list_key)
        self.full_hashes += 1

    def _apply(self, changes: list[tuple[str, str, str, str]]) -> None:
        """Replay changes in commit order: each sets one hash's membership exactly."""
        added: set[int] = set()
        removed: set[int] = set()
        for op, state, cat, number in changes:
            h = self._hash(canonical_bytes(state, cat, number))
            if op == "A":
                removed.discard(h)
                added.add(h)
            else:
                added.discard(h)
                removed.add(h)
        self._keys = ix.merge(self._keys, added, removed)
