"""Stand-ins for the query client and the regional service that speak plain JSON over a
real Mosquitto, so the agent's wiring is tested without the sealed protocol.

They keep the real classes' interfaces: ``FakeQueryClient`` the methods of
:class:`firmware.client.client.QueryClient` the agent calls, ``FakeRegional`` those of
:class:`host_tools.regional.service.RegionalService`, and verdicts are the real
:class:`~firmware.client.client.Verdict`. tests/test_fake_contracts.py holds them to that.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt

from firmware.client.client import Verdict
from tests.agent.sealing import opened


def _client(cid: str, port: int, ca, cert, key) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
    c.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
    c.reconnect_delay_set(0.1, 0.5)
    return c


class FakeQueryClient:
    """The query client's port: ``start``, ``connected``, ``submit``, ``publish``, ``close``.

    As the real client, it reports the link up (``on_link(True)``) once its response
    subscription is acknowledged, and gives every query exactly one verdict (``TIMEOUT``
    after the deadline)."""

    def __init__(self, *, port, ca, cert, key, terminal, region, timeout, will, on_link):
        self.terminal, self.region, self.timeout = terminal, region, timeout
        self.on_link = on_link
        self.c = _client(terminal, port, ca, cert, key)
        topic, payload, qos, retain = will
        self.c.will_set(topic, payload, qos, retain)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.pending: dict[bytes, tuple[Any, threading.Timer]] = {}
        self.lock = threading.Lock()
        self.port = port
        self._up = threading.Event()

    def start(self, *, sweeper: bool = True) -> FakeQueryClient:
        self.c.connect_async("127.0.0.1", self.port, keepalive=5)
        self.c.loop_start()
        return self

    def connected(self) -> bool:
        return self._up.is_set()

    def _on_connect(self, c, userdata, flags, rc, props=None):
        c.subscribe(f"ft/v1/{self.region}/r/{self.terminal}", qos=1)

    def _on_subscribe(self, c, userdata, mid, rcs, props=None):
        self._up.set()
        self.on_link(True)

    def _on_disconnect(self, *a, **k):
        self._up.clear()
        self.on_link(False)

    def _on_message(self, c, userdata, msg):
        body = json.loads(msg.payload)
        qid = bytes.fromhex(body["qid"])
        with self.lock:
            cb, timer = self.pending.pop(qid, (None, None))
        if cb is None:
            return
        timer.cancel()
        cb(Verdict(qid, body["outcome"], list_version=body.get("list_version")))

    def submit(self, query_id: bytes, dk, on_verdict, timeout: float | None = None) -> None:
        def expire():
            with self.lock:
                item = self.pending.pop(query_id, None)
            if item:
                item[0](Verdict(query_id, "TIMEOUT", reason="no answer in time"))

        timer = threading.Timer(self.timeout if timeout is None else timeout, expire)
        timer.daemon = True
        with self.lock:
            self.pending[query_id] = (on_verdict, timer)
        timer.start()
        # a resend after a restart carries the sealed box: open it as the regional would
        body = {"qid": query_id.hex(), "key": opened(dk, query_id).canonical().decode()}
        self.c.publish(f"ft/v1/{self.region}/q/{self.terminal}", json.dumps(body), qos=1)

    def publish(self, topic, payload, qos=1, retain=False):
        return self.c.publish(topic, payload, qos=qos, retain=retain)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        self._up.clear()


class FakeRegional:
    """Answers queries: POSSIBLE_MATCH for listed keys, NO_MATCH otherwise."""

    def __init__(self, *, port, ca, cert, key, region, listed: set[str]):
        self.region, self.listed, self.port = region, listed, port
        self.c = _client("regional", port, ca, cert, key)
        self.c.on_connect = lambda c, *a, **k: c.subscribe(f"ft/v1/{region}/q/+", qos=1)
        self.c.on_message = self._on_message
        self.hold = threading.Event()
        self.hold.set()
        self.answered: list[str] = []

    def start(self) -> FakeRegional:
        self.c.connect_async("127.0.0.1", self.port, keepalive=5)
        self.c.loop_start()
        return self

    def _on_message(self, c, userdata, msg):
        body = json.loads(msg.payload)
        if not self.hold.is_set():
            return  # "busy": drop it; the terminal re-sends
        outcome = "POSSIBLE_MATCH" if body["key"] in self.listed else "NO_MATCH"
        term = msg.topic.rsplit("/", 1)[1]
        self.answered.append(body["qid"])
        out = {"qid": body["qid"], "outcome": outcome, "list_version": 1}
        c.publish(f"ft/v1/{self.region}/r/{term}", json.dumps(out), qos=1)

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
