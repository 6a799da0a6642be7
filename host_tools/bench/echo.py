"""The naive baseline: a paho v5 plaintext echo over the same broker (mTLS, QoS 1).

The responder (run as its own process: ``python -m host_tools.bench.echo ...``) shares
``$share/echo/bench/echo/q/+`` and answers every query on its ``ResponseTopic`` with its
``CorrelationData`` and a 200-byte payload, as a straightforward paho application would.
:class:`EchoClient` is the requester side, a submitter for
:class:`host_tools.bench.loadgen.WindowedLoad`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from host_tools.bench.loadgen import Done

PAYLOAD_SIZE = 200
QUERY_TOPIC = "bench/echo/q/{cid}"
SHARED_SUB = "$share/echo/bench/echo/q/+"
RESPONSE_TOPIC = "bench/echo/r/{cid}"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path


def _client(cid: str, ep: Endpoint) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.tls_set(
        ca_certs=str(ep.ca),
        certfile=str(ep.cert),
        keyfile=str(ep.key),
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    return c


class EchoClient:
    """A simulated terminal for the echo baseline: ``submit(done)`` sends one query."""

    def __init__(self, cid: str, ep: Endpoint, timeout: float = 10.0):
        self.cid = cid
        self._pending: dict[bytes, Done] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._ready = threading.Event()
        self._payload = os.urandom(PAYLOAD_SIZE)
        self._qtopic = QUERY_TOPIC.format(cid=cid)
        self._rtopic = RESPONSE_TOPIC.format(cid=cid)
        self._c = _client(cid, ep)
        self._c.on_connect = self._on_connect
        self._c.on_subscribe = lambda *a, **k: self._ready.set()
        self._c.on_message = self._on_message
        self._c.connect(ep.host, ep.port, keepalive=30)
        self._c.loop_start()
        if not self._ready.wait(timeout):
            self.close()
            raise RuntimeError(f"echo requester {cid} did not connect/subscribe")

    def _on_connect(self, c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        c.subscribe(self._rtopic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        corr = getattr(m.properties, "CorrelationData", None)
        with self._lock:
            done = self._pending.pop(corr, None) if corr is not None else None
        if done is not None:
            done(len(m.payload) == PAYLOAD_SIZE)

    def submit(self, done: Done) -> None:
        corr = next(self._seq).to_bytes(8, "big")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self._rtopic
        props.CorrelationData = corr
        with self._lock:
            self._pending[corr] = done
        self._c.publish(self._qtopic, self._payload, qos=1, properties=props)

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()


def serve(cid: str, ep: Endpoint) -> None:
    """Run an echo responder until stdin closes or the process is terminated."""
    payload = os.urandom(PAYLOAD_SIZE)
    c = _client(cid, ep)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        c.subscribe(SHARED_SUB, qos=1)

    def on_subscribe(*_a: object) -> None:
        print("ready", flush=True)

    def on_message(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        rt = getattr(m.properties, "ResponseTopic", None)
        if not rt:
            return
        rp = Properties(PacketTypes.PUBLISH)
        rp.CorrelationData = getattr(m.properties, "CorrelationData", b"")
        c.publish(rt, payload, qos=1, properties=rp)

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(ep.host, ep.port, keepalive=30)
    c.loop_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="paho v5 echo responder (benchmark baseline)")
    p.add_argument("--id", default="bench-echo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    a = p.parse_args(argv)
    serve(a.id, Endpoint(a.host, a.port, a.ca, a.cert, a.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
