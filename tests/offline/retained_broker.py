"""A stand-in for :class:`~firmware.transport.mqtt.MqttLink`'s dynamic subscriptions that
answers like a broker holding retained messages, for ListSync tests without Mosquitto
(the agent's tests may use it as the ``link`` of a fake query client)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from firmware.protocol import topics
from host_tools.offline.builder import Built

REGION = "central"


class RetainedBroker:
    """add_subscription/remove_subscription as MqttLink has them; a subscription is
    answered with the retained message of its topic, as Mosquitto does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retained: dict[str, bytes] = {}
        self.subs: dict[str, Callable[[str, bytes], None]] = {}
        self.adds: list[str] = []
        self.refuse: set[str] = set()
        self.drop_first: set[str] = set()  # lose the first delivery of these topics
        self.max_chunks_in_flight = 0

    def add_subscription(
        self, topic: str, handler: Callable[[str, bytes], None], on_result: Any = None
    ) -> None:
        with self.lock:
            self.adds.append(topic)
            if topic in self.refuse:
                deliver = None
            else:
                self.subs[topic] = handler
                chunks = sum(1 for t in self.subs if "/manifest/" not in t)
                self.max_chunks_in_flight = max(self.max_chunks_in_flight, chunks)
                deliver = self.retained.get(topic)
                if topic in self.drop_first:
                    self.drop_first.discard(topic)
                    deliver = None
        if on_result is not None:
            on_result(
                topic,
                topic not in self.refuse,
                "Not authorized" if topic in self.refuse else "Granted QoS 1",
            )
        if deliver is not None:
            handler(topic, deliver)

    def remove_subscription(self, topic: str) -> None:
        with self.lock:
            self.subs.pop(topic, None)

    def dynamic_subscriptions(self) -> tuple[str, ...]:
        with self.lock:
            return tuple(self.subs)

    def publish(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.retained[topic] = payload
            handler = self.subs.get(topic)
        if handler is not None:
            handler(topic, payload)

    def put_list(self, built: Built, *, manifest: bool = True) -> None:
        m = built.manifest
        for i in range(len(m.chunks)):
            s, e = m.chunk_span(i)
            self.publish(topics.list_chunk_topic(REGION, m.kind, m.version, i), built.payload[s:e])
        if manifest:
            self.publish(topics.list_manifest_topic(REGION, m.kind), built.manifest_bytes)
