"""``Mosquitto.reload()`` returns only once the broker itself says it has reloaded, and what
the reload changes holds for the very next packet (no sleep anywhere)."""

from __future__ import annotations

import os
import signal
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from firmware.errors import FieldtermTimeout
from tests.support.broker import Mosquitto

LINE = "Reloading config."
WAIT = 10.0


class Publisher:
    """An anonymous MQTT v5 client whose QoS 1 publish returns the PUBACK reason code."""

    def __init__(self, port: int):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "reload-probe", protocol=mqtt.MQTTv5)
        self.cond = threading.Condition()
        self.acks: dict[int, ReasonCode] = {}
        self.up = False
        self.c.on_connect = self._connected
        self.c.on_publish = self._published
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        with self.cond:
            assert self.cond.wait_for(lambda: self.up, WAIT), "no CONNACK"

    def _connected(self, c, u, flags, rc, props=None):
        with self.cond:
            self.up = not rc.is_failure
            self.cond.notify_all()

    def _published(self, c, u, mid, rc, props=None):
        with self.cond:
            self.acks[mid] = rc
            self.cond.notify_all()

    def publish(self, topic: str) -> ReasonCode:
        info = self.c.publish(topic, b"x", qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acks, WAIT), "no PUBACK"
            return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def reload_lines(broker: Mosquitto) -> int:
    return broker.logs().count(LINE)


def test_reload_waits_for_the_brokers_line_and_the_new_acl_holds_at_once(tmp_path):
    with Mosquitto(tmp_path / "b", acl="topic write allowed\n") as broker:
        pub = Publisher(broker.port)
        try:
            assert pub.publish("later").getName() == "Not authorized"
            broker.acl = "topic write allowed\ntopic write later\n"
            broker.reload()
            assert reload_lines(broker) == 1
            assert not pub.publish("later").is_failure  # the first packet after reload()
            broker.acl = "topic write allowed\n"
            broker.reload()
            assert reload_lines(broker) == 2  # it waited for a new line, not the old one
            assert pub.publish("later").getName() == "Not authorized"
        finally:
            pub.close()


def test_reload_raises_with_the_log_tail_when_the_broker_does_not_reload(tmp_path):
    with Mosquitto(tmp_path / "b") as broker:
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # a broker too busy to handle the signal
        try:
            with pytest.raises(FieldtermTimeout, match=r"logged no 'Reloading config\.'") as exc:
                broker.reload(timeout=0.5)
            assert "log tail" in str(exc.value) and "mosquitto.log" in str(exc.value)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        broker.reload()  # alive, and reloads again once it runs
        assert reload_lines(broker) >= 1


@pytest.mark.parametrize("dest", ["file", "stderr"])
def test_reload_follows_the_log_destination_of_a_given_config(tmp_path, dest):
    """A config passed as text (the generated mosquitto.conf of provisioning logs to a file
    of its own; without log_dest Mosquitto logs to stderr)."""
    d = tmp_path / "b"
    (d / "data").mkdir(parents=True)
    d.chmod(0o755)
    log = d / "data" / "broker.log"
    conf = "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
    if dest == "file":
        conf += f"log_dest file {log}\nlog_type all\n"
    broker = Mosquitto(d, port=None)
    broker.conf_text = conf.format(port=broker.port)
    with broker:
        broker.reload()
        where = log if dest == "file" else d / "mosquitto.stderr"
        assert where.read_text().count(LINE) == 1
