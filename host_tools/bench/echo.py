"""Two plaintext echo baselines over the same broker (mTLS, QoS 1) as the sealed queries.

- ``echo-v5`` (naive): the requester sends 200 bytes with MQTT v5 ``ResponseTopic`` and
  ``CorrelationData`` properties; the responder answers 200 bytes to that topic with that
  correlation data, as a straightforward paho v5 application would.
- ``echo-min`` (stronger): no v5 properties at all. The query id is the first 8 bytes of
  the payload, the response topic follows from the query topic, and the requester is the
  product's own :class:`~firmware.transport.mqtt.MqttLink`, the transport the sealed
  query client uses. It differs from the sealed path only in what the far side does.

A responder runs as its own process (``python -m host_tools.bench.echo --mode v5|min
...``), shares the query topics, and prints ``ready`` when the broker has granted its
subscription (SUBACK). The requesters are submitters for
:class:`host_tools.bench.loadgen.WindowedLoad`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.errors import SetupError
from firmware.transport.mqtt import BrokerConfig, MqttLink
from host_tools.bench.loadgen import Done

PAYLOAD_SIZE = 200
ID_SIZE = 8
MODES = {
    # mode: (query topic prefix, shared subscription, response topic prefix)
    "v5": ("bench/echo/q/", "$share/echo/bench/echo/q/+", "bench/echo/r/"),
    "min": ("bench/min/q/", "$share/echomin/bench/min/q/+", "bench/min/r/"),
}


def _paho(cid: str, broker: BrokerConfig) -> mqtt.Client:
    """A paho v5 client set up as :class:`MqttLink` sets up its own."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.tls_set_context(broker.ssl_context())
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    return c


class EchoClient:
    """``echo-v5`` requester: ``submit(done)`` sends one query with v5 properties."""

    def __init__(self, cid: str, user: str, broker: BrokerConfig, timeout: float = 10.0):
        self.cid = cid
        self._pending: dict[bytes, Done] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._ready = threading.Event()
        self._payload = os.urandom(PAYLOAD_SIZE)
        self._qtopic = MODES["v5"][0] + user
        self._rtopic = MODES["v5"][2] + user
        self._c = _paho(cid, broker)
        self._c.on_connect = self._on_connect
        self._c.on_subscribe = lambda *a, **k: self._ready.set()
        self._c.on_message = self._on_message
        self._c.connect(broker.host, broker.port, keepalive=30)
        self._c.loop_start()
        if not self._ready.wait(timeout):
            self.close()
            raise SetupError(f"echo-v5 requester {cid} did not connect/subscribe")

    def _on_connect(self, c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        c.subscribe(self._rtopic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        corr = getattr(m.properties, "CorrelationData", None)
        with self._lock:
            done = self._pending.pop(corr, None) if corr is not None else None
        if done is not None:
            done(len(m.payload) == PAYLOAD_SIZE)

    def submit(self, done: Done) -> None:
        corr = next(self._seq).to_bytes(ID_SIZE, "big")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self._rtopic
        props.CorrelationData = corr
        with self._lock:
            self._pending[corr] = done
        self._c.publish(self._qtopic, self._payload, qos=1, properties=props)

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()


class MinimalEchoClient:
    """``echo-min`` requester over :class:`MqttLink`: the id travels in the payload."""

    def __init__(self, cid: str, user: str, broker: BrokerConfig, timeout: float = 10.0):
        self.cid = cid
        self._pending: dict[bytes, Done] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._body = os.urandom(PAYLOAD_SIZE - ID_SIZE)
        self._qtopic = MODES["min"][0] + user
        self._link = MqttLink(
            broker,
            cid,
            on_message=self._on_message,
            subscriptions=(MODES["min"][2] + user,),
        ).start()
        if not self._link.wait_ready(timeout):  # SUBACK: no answer can miss the subscription
            self.close()
            raise SetupError(f"echo-min requester {cid} did not connect")

    def _on_message(self, _topic: str, payload: bytes) -> None:
        with self._lock:
            done = self._pending.pop(payload[:ID_SIZE], None)
        if done is not None:
            done(len(payload) == PAYLOAD_SIZE)

    def submit(self, done: Done) -> None:
        qid = next(self._seq).to_bytes(ID_SIZE, "big")
        with self._lock:
            self._pending[qid] = done
        self._link.publish(self._qtopic, qid + self._body, qos=1)

    def close(self) -> None:
        self._link.close()


def serve(mode: str, cid: str, broker: BrokerConfig) -> None:
    """Run a responder of ``mode`` (``v5`` or ``min``) until the process is terminated."""
    qprefix, shared, rprefix = MODES[mode]
    body = os.urandom(PAYLOAD_SIZE - ID_SIZE)
    full = os.urandom(PAYLOAD_SIZE)
    c = _paho(cid, broker)
    skip = len(qprefix)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        c.subscribe(shared, qos=1)

    def on_subscribe(*_a: object) -> None:
        print("ready", flush=True)

    def on_v5(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        rt = getattr(m.properties, "ResponseTopic", None)
        if not rt:
            return
        rp = Properties(PacketTypes.PUBLISH)
        rp.CorrelationData = getattr(m.properties, "CorrelationData", b"")
        c.publish(rt, full, qos=1, properties=rp)

    def on_min(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        c.publish(rprefix + m.topic[skip:], m.payload[:ID_SIZE] + body, qos=1)

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_v5 if mode == "v5" else on_min
    c.connect(broker.host, broker.port, keepalive=30)
    c.loop_forever()


def responder_argv(mode: str, broker: BrokerConfig) -> list[str]:
    """The command line that runs a responder of ``mode`` as its own process."""
    return [
        sys.executable,
        "-m",
        "host_tools.bench.echo",
        "--mode",
        mode,
        "--id",
        f"bench-echo-{mode}-responder",
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--ca",
        str(broker.ca),
        "--cert",
        str(broker.cert),
        "--key",
        str(broker.key),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="plaintext echo responder (benchmark baseline)")
    p.add_argument("--mode", choices=sorted(MODES), default="v5")
    p.add_argument("--id", default="bench-echo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    a = p.parse_args(argv)
    serve(a.mode, a.id, BrokerConfig(a.host, a.port, a.ca, a.cert, a.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
