"""``SltdLookup``: the regional service's query path over an SLTD store.

    lk = SltdLookup.open("sltd.sqlite", index_key)      # or a postgresql:// URL
    rec = lk.lookup(dk)      # SltdRecord | None, a few microseconds on a miss
    lk.refresh()             # from a timer thread: apply store changes as a delta
    lk.close()

Membership is answered by a memory-mapped sorted array of keyed 64-bit hashes
(:mod:`host_tools.sltd.index`) plus a small in-memory overlay of hashes added or removed
since that file was built. Only a possible hit touches the store, which fetches the row
by its exact key, so a 64-bit collision can never produce a wrong answer.

Concurrency: the whole query state is one immutable object swapped by a single
assignment, so ``lookup`` takes no lock and never waits. ``refresh`` and the background
rebuild/compaction thread serialise among themselves. A rebuild or compaction writes a
new index file, renames it over the old one and swaps it in; lookups keep answering from
the old map meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from firmware.errors import SetupError
from host_tools.sltd import index as ix
from host_tools.sltd.records import SltdRecord, canonical_bytes
from host_tools.sltd.store import Change, SltdStore, StaleChangeLog, open_store

if TYPE_CHECKING:
    from firmware.protocol.dockey import DocumentKey

log = logging.getLogger(__name__)

#: Overlay size (added + removed hashes) that triggers a background compaction.
COMPACT_AT = 50_000
_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _State:
    base: ix.HashIndex
    added: frozenset[int]  # members not in base
    removed: frozenset[int]  # in base but no longer members
    version: int  # list version this state answers for


def prekeyed_hasher(index_key: bytes) -> Callable[[bytes], int]:
    """canonical bytes -> keyed BLAKE2b-64 (big-endian int), reusing one keyed state.

    Same function as ``firmware.protocol.dockey.keyed_hash64`` (checked at open by
    :func:`_check_agrees`); copying a keyed state skips re-absorbing the key per call.
    """
    seed = hashlib.blake2b(digest_size=8, key=index_key)
    from_bytes = int.from_bytes

    def h(data: bytes) -> int:
        s = seed.copy()
        s.update(data)
        return from_bytes(s.digest(), "big")

    return h


def _check_agrees(index_key: bytes, fast: Callable[[bytes], int]) -> None:
    from firmware.protocol.dockey import DocumentKey, keyed_hash64  # noqa: PLC0415

    dk = DocumentKey("UTO", "P", "L898902C3")
    if fast(dk.canonical()) != keyed_hash64(index_key, dk):
        raise SetupError("SLTD index hashing disagrees with firmware.protocol.dockey")


class SltdLookup:
    """Thread-safe membership and record lookup. Build with :meth:`open`."""

    def __init__(
        self,
        store: SltdStore,
        index_key: bytes,
        *,
        index_dir: str | Path | None = None,
        hash_fn: Callable[[DocumentKey], int] | None = None,
        compact_at: int = COMPACT_AT,
        progress: bool = False,
        owns_store: bool = True,
    ):
        if len(index_key) < 16:
            raise SetupError("index_key must be at least 16 bytes (32 random bytes, hex)")
        self.store = store
        self._owns_store = owns_store
        self._key_id = ix.key_id(index_key)
        if index_dir is None and store.local_path is None:
            index_dir = tempfile.gettempdir()  # a server store has no directory of its own
        self.path = ix.index_path(store.url, index_key, index_dir)
        self._compact_at = compact_at
        self._progress = progress
        self._lock = threading.Lock()  # refresh and swaps of the query state
        self._worker_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.rebuilds = 0
        self.compactions = 0
        if hash_fn is None:
            fast = prekeyed_hasher(index_key)
            _check_agrees(index_key, fast)
            self._hash_dk: Callable[[Any], int] = lambda dk: fast(dk.canonical())
            self._hash_key: Callable[[str, str, str], int] = lambda s, c, n: fast(
                canonical_bytes(s, c, n)
            )
        else:
            from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

            self._hash_dk = hash_fn
            self._hash_key = lambda s, c, n: hash_fn(DocumentKey(s, c, n))
        base = self._open_base()
        if base is None:
            base = self._build_from_store()
        self._state = _State(base, _EMPTY, _EMPTY, base.header.list_version)
        self.refresh()

    @classmethod
    def open(cls, sltd_db: str | Path, index_key: bytes, **kwargs: Any) -> SltdLookup:
        """Open the store by URL and map its index, building it if missing or stale."""
        store = open_store(sltd_db)
        try:
            return cls(store, index_key, **kwargs)
        except BaseException:
            store.close()
            raise

    # -- query path -----------------------------------------------------------------------

    def lookup(self, dk: DocumentKey) -> SltdRecord | None:
        """The listed record for this document, or None. Misses never touch the store."""
        h = self._hash_dk(dk)
        s = self._state
        if s.base.contains(h):
            if h in s.removed:
                return None
        elif h not in s.added:
            return None
        return self.store.get(dk.issuing_state, dk.category, dk.number)

    def might_contain_hash(self, h: int) -> bool:
        """Index membership only (no store check): for benchmarks and diagnostics."""
        s = self._state
        return (s.base.contains(h) and h not in s.removed) or h in s.added

    @property
    def list_version(self) -> int:
        return self._state.version

    @property
    def overlay_size(self) -> int:
        s = self._state
        return len(s.added) + len(s.removed)

    def __len__(self) -> int:
        s = self._state
        return s.base.n + len(s.added) - len(s.removed)

    # -- updates --------------------------------------------------------------------------

    def refresh(self) -> int:
        """Apply store changes since the last refresh; returns how many. Never blocks lookups.

        A bulk load in the store (unlogged) starts a background rebuild instead; lookups
        answer from the current state until it is swapped in.
        """
        with self._lock:
            s = self._state
            try:
                version, changes = self.store.changes_since(s.version)
            except StaleChangeLog:
                changes = []
                version = -1
            else:
                if version == s.version:
                    return 0
                self._state = self._replay(s.base, s.added, s.removed, changes, version)
        if version < 0:
            self._start_worker(self._rebuild)
            return 0
        if self.overlay_size >= self._compact_at:
            self._start_worker(self._compact)
        return len(changes)

    def compact(self, wait: bool = True) -> None:
        """Merge the overlay into a new index file in the background (optionally wait)."""
        self._start_worker(self._compact)
        if wait:
            self.wait_idle()

    def rebuild(self, wait: bool = True) -> None:
        """Rebuild the index file from the store in the background (optionally wait)."""
        self._start_worker(self._rebuild)
        if wait:
            self.wait_idle()

    def wait_idle(self, timeout: float = 3600.0) -> None:
        w = self._worker
        if w is not None:
            w.join(timeout)

    def close(self) -> None:
        self._stop.set()
        self.wait_idle(60.0)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> SltdLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _replay(
        self,
        base: ix.HashIndex,
        added: Iterable[int],
        removed: Iterable[int],
        changes: list[Change],
        version: int,
    ) -> _State:
        """Apply changes in commit order; each sets one hash's membership exactly."""
        a, r = set(added), set(removed)
        for op, state, cat, number in changes:
            h = self._hash_key(state, cat, number)
            in_base = base.contains(h)
            if op == "A":
                r.discard(h)
                if not in_base:
                    a.add(h)
            else:
                a.discard(h)
                if in_base:
                    r.add(h)
        return _State(base, frozenset(a), frozenset(r), version)

    def _swap_base(self, base: ix.HashIndex) -> None:
        """Install a base built at ``base.header.list_version``; replay what came after."""
        while not self._stop.is_set():
            with self._lock:
                try:
                    version, changes = self.store.changes_since(base.header.list_version)
                except StaleChangeLog:
                    pass  # another bulk load landed while building: build again
                else:
                    self._state = self._replay(base, (), (), changes, version)
                    return
            base = self._build_from_store()

    def _start_worker(self, target: Callable[[], None]) -> None:
        with self._worker_lock:
            if self._stop.is_set() or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(
                target=self._run,
                args=(target,),
                daemon=True,
                name=f"sltd-{target.__name__.strip('_')}",
            )
            self._worker.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            log.exception(
                "SLTD index %s failed; still serving the previous index", target.__name__.strip("_")
            )

    def _compact(self) -> None:
        s = self._state
        arr = ix.merge(s.base.array(), s.added, s.removed)
        ix.write_index(
            self.path,
            arr,
            list_version=s.version,
            store_id=self.store.store_id,
            index_key_id=self._key_id,
        )
        self._swap_base(ix.HashIndex(self.path))
        self.compactions += 1
        log.info("SLTD index compacted: %d hashes at list version %d", arr.size, s.version)

    def _rebuild(self) -> None:
        self._swap_base(self._build_from_store())

    def _open_base(self) -> ix.HashIndex | None:
        if not self.path.exists():
            return None
        try:
            base = ix.HashIndex(self.path)
        except SetupError as exc:
            log.warning("rebuilding SLTD index: %s", exc)
            return None
        h = base.header
        if (
            h.store_id != self.store.store_id
            or h.key_id != self._key_id
            or h.list_version < self.store.rebuild_version()
            or h.list_version > self.store.version()
        ):
            log.info("SLTD index %s is stale; rebuilding", self.path.name)
            return None
        return base

    def _build_from_store(self) -> ix.HashIndex:
        """Hash every key in one consistent store snapshot, sort, write, map."""
        bar = _progress(self.store.count(), self._progress) if self._progress else None
        hk = self._hash_key
        parts: list[np.ndarray] = []
        with self.store.key_snapshot() as (version, batches):
            for batch in batches:
                parts.append(np.fromiter((hk(s, c, n) for s, c, n in batch), np.uint64, len(batch)))
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        arr = ix.sort_unique(np.concatenate(parts) if parts else np.empty(0, np.uint64))
        ix.write_index(
            self.path,
            arr,
            list_version=version,
            store_id=self.store.store_id,
            index_key_id=self._key_id,
        )
        self.rebuilds += 1
        log.info("SLTD index built: %d hashes at list version %d", arr.size, version)
        return ix.HashIndex(self.path)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="rec", unit_scale=True, desc="index", file=None)


def read_index_key(path: str | Path) -> bytes:
    """The index key file of regional.toml: 32 random bytes as hex (whitespace ignored)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{p}: cannot read index key: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SetupError(f"{p}: index key is not hex") from None
    if len(key) != 32:
        raise SetupError(f"{p}: index key must be 32 bytes, got {len(key)}")
    return key
