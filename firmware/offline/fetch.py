"""The chunks of one download, fetched over MQTT a bounded window at a time.

:class:`ChunkWindow` subscribes to the topics of the chunks a
:class:`~firmware.offline.store.Download` still misses, at most ``window`` at a time, and
unsubscribes each once stored; the broker answers every subscription with the retained
chunk. A chunk whose hash is wrong is refused by ``Download.put`` and stays subscribed,
so the right one is taken when it is published; one not received within
``rerequest_after`` seconds is subscribed again (the broker re-sends it). Used by
:class:`firmware.offline.sync.ListSync` on its worker thread only (not thread-safe).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Protocol

from firmware.errors import OperationError
from firmware.offline.errors import OfflineListError
from firmware.offline.store import Download
from firmware.protocol import topics
from firmware.transport.mqtt import OnMessage, OnSubResult

log = logging.getLogger(__name__)


class SubscribingLink(Protocol):
    """What the offline download uses of :class:`~firmware.transport.mqtt.MqttLink` (its
    dynamic subscriptions); a test stand-in needs only these."""

    def add_subscription(
        self, topic_filter: str, handler: OnMessage, on_result: OnSubResult | None = None
    ) -> None: ...

    def remove_subscription(self, topic_filter: str) -> None: ...

    def dynamic_subscriptions(self) -> tuple[str, ...]: ...


class ChunkWindow:
    """The missing chunks of ``download``: queued, in flight (subscribed), stored."""

    def __init__(
        self,
        link: SubscribingLink,
        region: str,
        download: Download,
        *,
        window: int,
        rerequest_after: float,
        on_message: OnMessage,
        on_result: OnSubResult,
        clock: Callable[[], float],
    ):
        self.link = link
        self.region = region
        self.download = download
        self.window = window
        self.rerequest_after = rerequest_after
        self._on_message = on_message
        self._on_result = on_result
        self._clock = clock
        self._todo: collections.deque[int] = collections.deque(download.missing())
        self._inflight: dict[int, float] = {}  # chunk index -> when (re)subscribed

    @property
    def kind(self) -> str:
        return self.download.manifest.kind

    @property
    def version(self) -> int:
        return self.download.manifest.version

    @property
    def total(self) -> int:
        return len(self.download.manifest.chunks)

    @property
    def missing(self) -> int:
        return len(self._todo) + len(self._inflight)

    def topic(self, index: int) -> str:
        return topics.list_chunk_topic(self.region, self.kind, self.version, index)

    def fill(self) -> None:
        """Subscribe to the next missing chunks, up to the window."""
        while self._todo and len(self._inflight) < self.window:
            i = self._todo.popleft()
            self._inflight[i] = self._clock()
            if not self._subscribe(i):
                return

    def wanted(self, kind: str, version: int, index: int) -> bool:
        """Whether a chunk message is one this window waits for (not an earlier list's,
        nor one stored already)."""
        return (kind, version) == (self.kind, self.version) and index in self._inflight

    def store(self, index: int, payload: bytes) -> None:
        """``Download.put`` the chunk, unsubscribe it and take the next one; a refusal
        (:class:`~firmware.offline.errors.ListChunkError`) keeps it subscribed."""
        try:
            self.download.put(index, payload)
        except OfflineListError:
            self._inflight[index] = self._clock()  # waits for the right one
            raise
        del self._inflight[index]
        self.link.remove_subscription(self.topic(index))
        self.fill()

    def refetch_spoiled(self) -> None:
        """Queue again the chunks whose bytes on disk no longer verify."""
        self._todo.extend(i for i in self.download.missing() if i not in self._inflight)
        self.fill()

    def rerequest_late(self) -> None:
        """Subscribe again to chunks in flight for longer than ``rerequest_after``."""
        now = self._clock()
        for i, since in list(self._inflight.items()):
            if now - since >= self.rerequest_after:
                log.info("offline list %d: chunk %d not received; asking again", self.version, i)
                self._inflight[i] = now
                if not self._subscribe(i):
                    return

    def drop(self) -> None:
        """Unsubscribe every chunk still in flight."""
        for i in list(self._inflight):
            self.link.remove_subscription(self.topic(i))
        self._inflight.clear()
        self._todo.clear()

    def _subscribe(self, index: int) -> bool:
        try:
            self.link.add_subscription(self.topic(index), self._on_message, self._on_result)
        except OperationError:
            log.warning("offline list download: the link is closed")
            return False
        return True
