"""The offline list's keyed hashes of an SLTD store, kept current as records change.

    hashes = KeyedHashes(store, list_key)
    version, keys = hashes.current()   # sorted distinct uint64, ready for ListPublisher

The first :meth:`KeyedHashes.current` hashes every record once (:func:`builder.hash_store`);
later calls apply only the store's change log since then (``changes_since``), as the
regional's index refresh does, so a publication every 15 minutes costs the changes, not
the whole store. A bulk load (the change log no longer reaches back) rehashes everything.

It also keeps the hashes that really entered or left the set at each version (a record
added twice enters once), so :meth:`KeyedHashes.changes_since` gives the publisher the
exact delta against its last full list in time proportional to the changes, with no
difference taken over two whole arrays.
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

#: hashes kept in the transition log; older entries are dropped (the publisher then makes
#: a full list, which it does anyway past ``PublishPolicy.max_delta_changes``)
MAX_LOG_CHANGES = 2_000_000


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
        # (version, hashes that entered, hashes that left), in version order, since _log_from
        self._log: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._log_from = -1

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
                        self._apply(version, changes)
                        self.version = version
            return self.version, self._keys

    def changes_since(self, version: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(entered, left)``: sorted hashes now in the set that were not at ``version``,
        and those that were and are not, as of the last :meth:`current`; None when the log
        does not reach back to ``version`` (a rehash since, or too many changes)."""
        with self._lock:
            if self._log_from < 0 or not self._log_from <= version <= self.version:
                return None
            net: dict[int, bool] = {}  # hash -> entered (True) or left (False) since version
            for v, entered, left in self._log:
                if v <= version:
                    continue
                for h in entered.tolist():
                    if net.pop(h, None) is None:  # it had left since: back as at ``version``
                        net[h] = True
                for h in left.tolist():
                    if net.pop(h, None) is None:
                        net[h] = False
        entered_all = np.array(sorted(h for h, e in net.items() if e), dtype=np.uint64)
        left_all = np.array(sorted(h for h, e in net.items() if not e), dtype=np.uint64)
        return entered_all, left_all

    def _rehash(self) -> None:
        self.version, self._keys = hash_store(self.store, self._list_key)
        self.full_hashes += 1
        self._log, self._log_from = [], self.version

    def _apply(self, version: int, changes: list[tuple[str, str, str, str]]) -> None:
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
        add = np.array(sorted(added), dtype=np.uint64)
        rem = np.array(sorted(removed), dtype=np.uint64)
        entered = add[~ix.members(self._keys, add)]
        left = rem[ix.members(self._keys, rem)]
        self._keys = ix.merge(self._keys, entered.tolist(), left.tolist())
        self._log.append((version, entered, left))
        logged = sum(e.size + lf.size for _, e, lf in self._log)
        while self._log and logged > MAX_LOG_CHANGES:
            v, e, lf = self._log.pop(0)
            logged -= e.size + lf.size
            self._log_from = v
