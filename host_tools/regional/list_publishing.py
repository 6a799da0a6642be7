"""The regional publishes the signed offline list over MQTT (docs/offline-list.md,
"Publishing").

At start, then every ``[offline] publish_interval`` seconds, one regional process of the
region takes the keyed hashes of its SLTD store (:class:`~host_tools.offline.keyset.
KeyedHashes`, kept current from the store's change log), asks
:class:`~host_tools.offline.publisher.ListPublisher` for a new full list or a delta, and
publishes it, all retained at QoS 1:

1. every chunk on ``ft/v1/<region>/list/<kind>/<version>/<index>``, waiting for each
   PUBACK, so a kiosk that sees a manifest finds every chunk;
2. the signed manifest on ``ft/v1/<region>/list/manifest/<kind>``;
3. an empty retained payload (which clears a retained message) on every topic of a list
   no longer referenced: the old full list's chunks after a rebuild, the old delta's
   chunks and the delta manifest itself when a new full list replaces it.

Only the process holding an exclusive ``flock`` on ``regional-offline-list.lock`` (beside
the replay DB) publishes; the others try again each interval and report
``"publisher": false``. What was published is kept in ``regional-offline-list/``
(:mod:`host_tools.offline.published`) before it is sent, so a restart, or another process
taking over, republishes the same bytes under the same version (a kiosk holding it
ignores it) and carries on with deltas against the same full list. After a reconnect the
current list is republished (a broker without persistence forgets retained messages).

Without the offline-list key file the service runs without publishing and says so once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline.listkey import key_id, load_list_key
from firmware.protocol import topics
from host_tools.offline.builder import Built
from host_tools.offline.keyset import KeyedHashes
from host_tools.offline.published import Published, PublishedState
from host_tools.offline.publisher import ListPublisher
from host_tools.regional.config import RegionalConfig
from host_tools.sltd.store import SltdStore

log = logging.getLogger(__name__)

LOCK_NAME = "regional-offline-list.lock"
STATE_NAME = "regional-offline-list"
PUBACK_WAIT = 30.0  # seconds for the broker to acknowledge one list's chunks


def list_topics(region: str, built: Built) -> list[str]:
    """The chunk topics of ``built``, in order, then its manifest topic."""
    m = built.manifest
    chunks = [topics.list_chunk_topic(region, m.kind, m.version, i) for i in range(len(m.chunks))]
    return [*chunks, topics.list_manifest_topic(region, m.kind)]


class ListPublishing:
    """One regional process's part in publishing the list: ``start()``, ``stop()``,
    ``health()``; :meth:`publish_round` does one round (the thread calls it)."""

    def __init__(
        self,
        cfg: RegionalConfig,
        store: SltdStore,
        sign_key: Ed25519PrivateKey,
        link: Any,  # firmware.transport.mqtt.MqttLink: publish(), connected, connects
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.region = cfg.region
        self.settings = cfg.offline_settings
        self._link = link
        self._clock = clock
        self._sign_key = sign_key
        self._store = store
        self.lock_path = cfg.replay_db.with_name(LOCK_NAME)
        self.state = PublishedState(cfg.replay_db.with_name(STATE_NAME))
        self.enabled = self.settings.list_key.is_file()
        self.publisher = False
        self.current: Published | None = None
        self.published_at: float | None = None
        self._lock_fd: int | None = None
        self._said_waiting = False
        self._hashes: KeyedHashes | None = None
        self._lists: ListPublisher | None = None
        self._key_id = b""
        self._sent_on_connect = -1  # link.connects when the current list was last sent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ListPublishing:
        if not self.enabled:
            log.warning(
                "regional %s: no offline-list key (%s): the offline list is not published; "
                "run `fieldterm provision broker-config` again to add it",
                self.region,
                self.settings.list_key,
            )
            return self
        list_key = load_list_key(self.settings.list_key)
        self._key_id = key_id(list_key)
        self._hashes = KeyedHashes(self._store, list_key)
        self._thread = threading.Thread(target=self._loop, name="offline-list", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=PUBACK_WAIT + 5.0)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock: another process may take over
            self._lock_fd = None
        self.publisher = False

    def health(self) -> dict[str, Any]:
        """``offline_list`` in the regional's health: the list this process last
        published (all None when it is not the publisher or has published nothing yet)."""
        m = self.current.latest.manifest if self.current is not None else None
        out: dict[str, Any] = {
            "version": m.version if m else None,
            "kind": m.kind if m else None,
            "created": m.created if m else None,
            "bytes": m.size if m else None,
            "records": m.records if m else None,
            "full_version": self.current.full.manifest.version if self.current else None,
            "store_version": self.current.store_version if self.current else None,
            "published_at": self.published_at,
            "publisher": self.publisher,
        }
        if not self.enabled:
            out["disabled"] = f"no offline-list key ({self.settings.list_key.name})"
        elif not self.publisher:
            out["waiting"] = "another regional process publishes the list"
        return out

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.settings.publish_interval
        poll = min(interval, 1.0)
        due = 0.0  # monotonic time of the next round
        while not self._stop.is_set():
            if not self._link.connected.is_set():
                self._link.connected.wait(poll)  # wakes at the CONNACK, not a poll later
                continue
            now = time.monotonic()
            reconnected = self.current is not None and self._link.connects != self._sent_on_connect
            if now >= due or (self.publisher and reconnected):
                try:
                    done = self.publish_round()
                except Exception:
                    log.exception("offline list: publishing failed; trying again")
                    done = False
                due = time.monotonic() + (interval if done else poll)
            self._stop.wait(poll)

    def publish_round(self) -> bool:
        """One round; False when it must be tried again soon (link down, no PUBACK)."""
        assert self._hashes is not None
        if not self._take_lock():
            return True
        if not self._link.connected.is_set():
            return False
        connects = self._link.connects
        version, keys = self._hashes.current()
        if self._lists is None:
            self._lists = ListPublisher(
                region=self.region,
                sign_key=self._sign_key,
                key_id=self._key_id,
                bits=self.settings.fingerprint_bits,
                chunk_size=self.settings.chunk_size,
                policy=self.settings.policy,
                clock=self._clock,
            )
            old = self.state.load(self._sign_key.public_key(), self.region, self._key_id)
            if old is not None and self._resumable(old):
                self._lists.restore(old.full, old.base_keys, old.latest, old.store_version)
                self.current = old
                log.info("offline list: resuming at version %d", old.latest.manifest.version)
        pub = (
            self._lists.update(version, keys, changes=self._hashes.changes_since)
            if version >= 1
            else None
        )
        if pub is not None:
            cur = self.current
            if pub.full is not None:
                # KeyedHashes replaces its array on every change, never edits it in place
                new = Published(pub.full, keys, None, version)
            else:
                assert cur is not None and pub.delta is not None
                new = Published(cur.full, cur.base_keys, pub.delta, version)
            self.state.save(new)  # on disk before any kiosk can see it
            self.current = new
        elif self.current is None or connects == self._sent_on_connect:
            return True  # nothing new, and the broker still holds what was sent
        # a new delta alone on a full list already sent on this connection: send the delta
        only_delta = pub is not None and pub.full is None and connects == self._sent_on_connect
        if not self._send(self.current, only_delta=only_delta):
            return False
        self._sent_on_connect = connects
        self.published_at = round(self._clock(), 3)
        m = self.current.latest.manifest
        log.info(
            "offline list: published %s version %d (%d records, %d bytes, %d chunks)",
            m.kind, m.version, m.records, m.size, len(m.chunks),
        )  # fmt: skip
        return True

    def _resumable(self, old: Published) -> bool:
        """The saved lists were made with these settings (the next list is a delta from
        the saved base to the store as it is now, so the store's version does not matter)."""
        f = old.full.manifest
        return (
            f.filter.get("fingerprint_bits") == self.settings.fingerprint_bits
            and f.chunk_size == self.settings.chunk_size
        )

    def _take_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not self._said_waiting:
                self._said_waiting = True
                log.info("offline list: another regional process publishes it (%s)", self.lock_path)
            return False
        self._lock_fd = fd
        self.publisher = True
        log.info("offline list: this process publishes it (holds %s)", self.lock_path)
        return True

    # -- MQTT --------------------------------------------------------------------------------
    def _send(self, pub: Published, *, only_delta: bool = False) -> bool:
        """Chunks (acknowledged) before manifests, then clear what is no longer referenced.
        ``only_delta``: the full list is on the broker already; send the delta alone."""
        held = [pub.full] + ([pub.delta] if pub.delta is not None else [])
        lists = held[1:] if only_delta else held
        keep = {t for b in held for t in list_topics(self.region, b)}
        stale = self.state.retained() - keep
        if pub.delta is None:  # even with no record of one (a lost state directory)
            stale.add(topics.list_manifest_topic(self.region, "delta"))
        self.state.set_retained(stale | keep)  # recorded before sent: cleared even after a crash
        for b in lists:
            m = b.manifest
            chunk_topics = list_topics(self.region, b)[:-1]
            infos = [
                self._link.publish(t, b.payload[slice(*m.chunk_span(i))], qos=1, retain=True)
                for i, t in enumerate(chunk_topics)
            ]
            if not self._acked(infos):
                return False
        infos = [
            self._link.publish(
                list_topics(self.region, b)[-1], b.manifest_bytes, qos=1, retain=True
            )
            for b in lists
        ]
        if not self._acked(infos):
            return False
        # A new full list makes the old delta meaningless: its manifest goes first, so no
        # kiosk fetches chunks that are about to disappear.
        order = sorted(stale, key=lambda t: "/manifest/" not in t)
        if not self._acked([self._link.publish(t, b"", qos=1, retain=True) for t in order]):
            return False
        self.state.set_retained(keep)
        return True

    @staticmethod
    def _acked(infos: list[Any]) -> bool:
        end = time.monotonic() + PUBACK_WAIT
        for info in infos:
            try:
                info.wait_for_publish(max(0.0, end - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("offline list: a publish failed (%s); trying again", exc)
                return False
            if not info.is_published():
                log.warning("offline list: no PUBACK within %.0f s; trying again", PUBACK_WAIT)
                return False
        return True
