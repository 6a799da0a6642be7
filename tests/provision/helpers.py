"""Test helpers: run the provision CLI in-process, and a small blocking paho v5 client."""

from __future__ import annotations

import argparse
import ssl
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from firmware.cli import EXIT_BAD_DATA, EXIT_SETUP
from firmware.errors import BadDataError, SetupError
from host_tools.provision.cli import register

WAIT = 10.0  # seconds: upper bound of every wait below (never a timing assertion)


def run_cli(argv: list[str]) -> int:
    """``fieldterm provision ...`` in-process, with the exit codes of firmware.cli.main.

    Only this subcommand is registered, so a test here does not depend on every other
    part of the tree importing cleanly.
    """
    parser = argparse.ArgumentParser(prog="fieldterm")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SetupError as exc:
        print(f"fieldterm provision: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except BadDataError as exc:
        print(f"fieldterm provision: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA


def provision(registry: Path, *argv: str, passphrase: Path | None = None) -> int:
    args = ["provision", "--registry", str(registry)]
    if passphrase is not None:
        args += ["--passphrase-file", str(passphrase)]
    return run_cli([*args, *argv])


class ConnectRefused(Exception):
    pass


@dataclass
class Peer:
    """A paho MQTT v5 client over mutual TLS, with blocking helpers and a delivery log."""

    port: int
    ca: Path
    cert: Path | None
    key: Path | None
    name: str = "peer"
    received: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.cert:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        self.client.tls_set_context(ctx)
        self._cond = threading.Condition()
        self._connack: ReasonCode | None = None
        self._closed = False
        #: The reason the broker gave when it closed the connection (MQTT v5 DISCONNECT).
        self.disconnect_reason: ReasonCode | None = None
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    @classmethod
    def from_bundle(cls, port: int, bundle: Path, name: str | None = None) -> Peer:
        return cls(
            port,
            bundle / "ca.crt",
            bundle / "client.crt",
            bundle / "client.key",
            name or bundle.name,
        )

    # callbacks run on paho's thread
    def _on_connect(self, c, u, flags, rc, props=None):
        with self._cond:
            self._connack = rc
            self._cond.notify_all()

    def _on_disconnect(self, c, u, flags, rc, props=None):
        with self._cond:
            self.disconnect_reason = rc
            self._closed = True
            self._cond.notify_all()

    def _on_publish(self, c, u, mid, rc, props=None):
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def _on_subscribe(self, c, u, mid, rcs, props=None):
        with self._cond:
            self._subacks[mid] = list(rcs)
            self._cond.notify_all()

    def _on_message(self, c, u, msg):
        with self._cond:
            self.received.append((msg.topic, msg.payload))
            self._cond.notify_all()

    def _wait(self, pred, what: str):
        with self._cond:
            if not self._cond.wait_for(pred, timeout=WAIT):
                raise AssertionError(f"{self.name}: no {what} within {WAIT}s")

    def connect(self) -> Peer:
        """Connect or raise ConnectRefused (TLS refusal or a CONNACK failure)."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (ssl.SSLError, OSError) as exc:
            raise ConnectRefused(str(exc)) from exc
        self.client.loop_start()
        self._wait(lambda: self._connack is not None or self._closed, "CONNACK")
        if self._connack is None or self._connack.is_failure:
            self.close()
            raise ConnectRefused(f"connack {self._connack}")
        return self

    def publish(self, topic: str, payload: bytes = b"x", *, retain: bool = False) -> ReasonCode:
        """QoS 1 publish; returns the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._wait(lambda: info.mid in self._acks, f"PUBACK for {topic}")
        return self._acks[info.mid]

    def subscribe(self, topic: str) -> list[ReasonCode]:
        _, mid = self.client.subscribe(topic, qos=1)
        self._wait(lambda: mid in self._subacks, f"SUBACK for {topic}")
        return self._subacks[mid]

    def wait_messages(self, topic: str, n: int) -> list[bytes]:
        self._wait(lambda: sum(1 for t, _ in self.received if t == topic) >= n, f"{n} on {topic}")
        return [p for t, p in self.received if t == topic]

    def got(self, topic: str, within: float) -> bool:
        """Whether a message on ``topic`` has arrived, waiting at most ``within`` seconds
        (for polling loops such as waiting for a bridge to come up)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count(topic) > 0, timeout=within)

    def count(self, topic: str) -> int:
        with self._cond:
            return sum(1 for t, _ in self.received if t == topic)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def wait_closed(self) -> None:
        """Until the broker has closed this connection (paho's on_disconnect)."""
        self._wait(lambda: self._closed, "disconnect")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def try_connect(port: int, bundle: Path) -> bool:
    """True when a bundle's identity is accepted (TLS and CONNACK)."""
    try:
        Peer.from_bundle(port, bundle, f"probe-{bundle.name}").connect().close()
    except ConnectRefused:
        return False
    return True
