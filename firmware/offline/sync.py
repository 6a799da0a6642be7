"""The kiosk fetches the offline list over MQTT: on demand, resumable, never half used.

    store = OfflineStore(cfg.store_dir, region=cfg.region, sign_public=pub,
                         key_id=listkey.key_id(list_key))
    sync = ListSync(client.link, store, on_installed=lambda status: answerer.reload())
    sync.start()      # returns at once; the worker recovers the store, then subscribes
    sync.status()     # {"held_version", "downloading", "missing", "refusals", "last_install", ...}
    sync.close()      # idempotent: stops the worker (bounded join), drops the subscriptions

``link`` is the kiosk's one :class:`~firmware.transport.mqtt.MqttLink` (the agent shares
its query client's, ``client.link``); ListSync only adds dynamic subscriptions to it.
``region`` defaults to the store's (the two must agree). ``window`` (default 8) bounds the
chunks in flight, and with them the memory a download takes (about ``window`` chunks).

How it works (docs/offline-list.md, "Download"):

- It subscribes to the two retained manifests, ``list/manifest/full`` and
  ``list/manifest/delta``. A manifest that is not the installed one goes through
  :meth:`OfflineStore.begin`; a refusal (``signature``, ``region``, ``rollback``, ``key``,
  ``structure``) is counted by reason and logged, and the installed list stays in use. A
  delta for another base waits until its full list is installed; a delta no newer than the
  installed list is stale and ignored. A newer full list replaces a download in progress;
  an older list, or a delta arriving while a full list downloads, waits for it to end.
- Then it fetches the chunks :meth:`Download.missing` names through a
  :class:`~firmware.offline.fetch.ChunkWindow`: at most ``window`` subscribed at a time,
  a chunk with a wrong hash refused (reason ``chunk``) until the right one is published,
  one that never came asked for again after ``rerequest_after`` seconds.
- With nothing missing it installs (verify, atomic swap) and calls ``on_installed(status)``.
- After a restart the store is recovered and the download resumes with only the chunks
  not on disk; after a link drop the link re-makes the subscriptions and the broker
  re-sends what is still wanted.

Paho's network thread only queues messages; every file operation happens on ListSync's
own worker thread. ``on_installed``, ``on_progress`` and ``on_refused(reason, message)``
(each refusal as it is counted, so the agent can report it at once) run on that worker
thread.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from firmware.errors import EnvelopeError, OperationError
from firmware.offline import listdir
from firmware.offline.errors import ListBaseError, ListIncompleteError, OfflineListError
from firmware.offline.fetch import ChunkWindow, SubscribingLink
from firmware.offline.store import OfflineStore
from firmware.protocol import topics

log = logging.getLogger(__name__)

KINDS = ("full", "delta")
DEFAULT_WINDOW = 8
JOIN_TIMEOUT = 5.0

OnInstalled = Callable[[dict[str, Any]], None]
OnProgress = Callable[[int, int], None]  # (chunks stored, chunks in the list)
OnRefused = Callable[[str, str], None]  # (reason, message)


def peek_version(manifest_bytes: bytes) -> int | None:
    """The unverified ``version`` of a signed manifest, only to order work (None if unreadable)."""
    try:
        v = json.loads(manifest_bytes)["manifest"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return v if isinstance(v, int) else None


class ListSync:
    """Keeps the store's list up to date from the region's retained list topics."""

    def __init__(
        self,
        link: SubscribingLink,
        store: OfflineStore,
        *,
        region: str | None = None,
        on_installed: OnInstalled | None = None,
        on_progress: OnProgress | None = None,
        on_refused: OnRefused | None = None,
        window: int = DEFAULT_WINDOW,
        rerequest_after: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.link = link
        self.store = store
        self.region = topics.validate_id("region", region or store.region)
        if self.region != store.region:
            raise ValueError(f"region {self.region!r} is not the store's ({store.region!r})")
        self.window = window
        self.rerequest_after = rerequest_after
        self._on_installed = on_installed
        self._on_progress = on_progress
        self._on_refused = on_refused
        self._clock = clock
        self._q: queue.Queue[tuple[Any, ...]] = queue.Queue()  # unbounded: paho never waits
        self._stop = threading.Event()
        self._lock = threading.Lock()  # lifecycle and the status fields
        self._thread: threading.Thread | None = None
        self._closed = False
        # worker state
        self._win: ChunkWindow | None = None  # the download in progress
        self._pending: dict[str, bytes] = {}  # manifests waiting for the current work
        self._seen: dict[str, bytes] = {}  # last manifest handled per kind (redeliveries)
        # status (read under _lock)
        self._held = 0
        self._downloading: int | None = None
        self._missing = 0
        self._refusals: collections.Counter[str] = collections.Counter()
        self._last_install: float | None = None
        self._chunks_received = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ListSync:
        """Start the worker (returns at once). Idempotent."""
        with self._lock:
            if self._thread is not None or self._closed:
                return self
            self._thread = threading.Thread(target=self._run, name="offline-list-sync", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the worker (bounded join) and drop every subscription ListSync made. A
        download in progress stays on disk and resumes at the next start. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stop.set()
        self._q.put(("stop", "", b""))  # wake the worker now
        if thread is not None:
            thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("offline list sync: worker did not stop within %.0f s", JOIN_TIMEOUT)
        for kind in KINDS:
            self.link.remove_subscription(topics.list_manifest_topic(self.region, kind))
        if self._win is not None:
            self._win.drop()

    def __enter__(self) -> ListSync:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> dict[str, Any]:
        """For health: ``held_version`` (0: none), ``downloading`` (version or None),
        ``missing`` (chunks still to fetch), ``refusals`` (count by reason),
        ``last_install`` (unix time or None), ``chunks_received`` (chunk messages heard)."""
        with self._lock:
            return {
                "held_version": self._held,
                "downloading": self._downloading,
                "missing": self._missing,
                "refusals": dict(self._refusals),
                "last_install": self._last_install,
                "chunks_received": self._chunks_received,
            }

    # -- paho's network thread: queue and return ------------------------------------------
    def _manifest_msg(self, topic: str, payload: bytes) -> None:
        self._q.put(("manifest", topic, payload))

    def _chunk_msg(self, topic: str, payload: bytes) -> None:
        self._q.put(("chunk", topic, payload))

    def _sub_result(self, topic: str, granted: bool, reason: str) -> None:
        if not granted:
            self._q.put(("refused", topic, reason))

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.store.recover()
        except OSError:
            log.exception("offline list store: recovery failed")
        self._set_status(held=self.store.held_version())
        try:
            for kind in KINDS:
                self.link.add_subscription(
                    topics.list_manifest_topic(self.region, kind),
                    self._manifest_msg,
                    self._sub_result,
                )
        except OperationError:
            log.warning("offline list sync: the link is closed; not syncing")
            return
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=1.0)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(*item)
                self._rerequest_late()
            except Exception:
                log.exception("offline list sync: unexpected failure (continuing)")

    def _handle(self, what: str, topic: str, payload: Any) -> None:
        if what == "manifest":
            kind = topic.rpartition("/")[2]
            if kind in KINDS:
                self._manifest(kind, payload)
        elif what == "chunk":
            self._chunk(topic, payload)
        elif what == "stop":
            return
        elif what == "refused":
            self._refuse("subscribe", f"the broker refused the subscription {topic} ({payload})")

    def _manifest(self, kind: str, data: bytes) -> None:
        if not data or self._seen.get(kind) == data:
            return  # a cleared retained message, or the same one again after a reconnect
        self._seen[kind] = data
        if self._installed(data):
            return
        if self._win is not None:
            current = self._win.download
            if data == current.manifest_bytes:
                return
            version = peek_version(data)
            if (
                version is None
                or version <= current.manifest.version
                or (kind == "delta" and current.manifest.kind == "full")  # its base, maybe
            ):
                self._pending[kind] = data  # looked at once the current download ends
                return
        self._begin(kind, data)

    def _installed(self, data: bytes) -> bool:
        name = self.store.current_name()
        if name is None:
            return False
        for f in (listdir.MANIFEST, listdir.DELTA_MANIFEST):
            try:
                if (self.store.lists / name / f).read_bytes() == data:
                    return True
            except OSError:
                continue
        return False

    def _begin(self, kind: str, data: bytes) -> None:
        version = peek_version(data)
        if kind == "delta" and version is not None and version <= self.store.held_version():
            log.debug("offline list: delta %d is not newer than the installed list", version)
            return
        try:
            dl = self.store.begin(data)
        except ListBaseError as exc:
            log.info("offline list: %s; it waits for its full list", exc)
            self._pending[kind] = data
            return
        except OfflineListError as exc:
            self._refuse(exc.reason, str(exc))
            return
        except OSError:
            log.exception("offline list store: cannot start the download")
            self._seen.pop(kind, None)  # taken again when the broker re-sends it
            return
        if self._win is not None:
            self._win.drop()  # a newer list replaces the one in progress
        self._pending.pop(kind, None)
        self._win = win = ChunkWindow(
            self.link, self.region, dl,
            window=self.window, rerequest_after=self.rerequest_after,
            on_message=self._chunk_msg, on_result=self._sub_result, clock=self._clock,
        )  # fmt: skip
        log.info("offline list %d (%s): fetching %d of %d chunks",
                 win.version, win.kind, win.missing, win.total)  # fmt: skip
        self._set_status(downloading=win.version)
        win.fill()
        self._progressed()

    def _chunk(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._chunks_received += 1
        try:
            kind, version, index = topics.parse_list_chunk_topic(self.region, topic)
        except EnvelopeError:
            return
        win = self._win
        if not payload or win is None or not win.wanted(kind, version, index):
            return  # a cleared chunk, an earlier list's, or one stored already
        try:
            win.store(index, payload)
        except OfflineListError as exc:
            self._refuse(exc.reason, f"list {version} chunk {index}: {exc}")
            return
        if self._on_progress is not None:
            self._on_progress(win.total - win.missing, win.total)
        self._progressed()

    def _progressed(self) -> None:
        win = self._win
        if win is None:
            return
        self._set_status(missing=win.missing)
        if win.missing == 0:
            self._install(win)

    def _install(self, win: ChunkWindow) -> None:
        try:
            win.download.install().close()
        except ListIncompleteError:
            win.refetch_spoiled()  # a chunk spoiled on disk: fetch it again
            self._set_status(missing=win.missing)
            return
        except OfflineListError as exc:
            self._win = None
            self._set_status(downloading=None, missing=0)
            self._refuse(exc.reason, f"list {win.version} failed verification: {exc}")
            return
        self._win = None
        self._set_status(
            held=self.store.held_version(), downloading=None, missing=0, installed=self._clock()
        )
        if self._on_installed is not None:
            try:
                self._on_installed(self.status())
            except Exception:
                log.exception("offline list sync: on_installed failed")
        for kind in KINDS:  # a newer full list first, then a delta that waited for its base
            data = self._pending.pop(kind, None)
            if data is not None and self._win is None:
                self._begin(kind, data)
            elif data is not None:
                self._pending[kind] = data

    def _rerequest_late(self) -> None:
        if self._win is not None:
            self._win.rerequest_late()

    def _refuse(self, reason: str | None, message: str) -> None:
        reason = reason or "structure"
        log.warning("offline list refused (%s): %s", reason, message)
        with self._lock:
            self._refusals[reason] += 1
        if self._on_refused is not None:
            try:
                self._on_refused(reason, message)
            except Exception:
                log.exception("offline list sync: on_refused failed")

    def _set_status(self, **kw: Any) -> None:
        with self._lock:
            if "held" in kw:
                self._held = kw["held"]
            if "downloading" in kw:
                self._downloading = kw["downloading"]
            if "missing" in kw:
                self._missing = kw["missing"]
            if "installed" in kw:
                self._last_install = kw["installed"]
