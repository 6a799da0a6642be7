"""``MqttLink`` is ready only when the broker has granted its subscriptions (SUBACK).

A link reported "up" at CONNACK could be handed a query or a response before its
subscription exists, and the broker would drop it. The callbacks are driven directly
(a recording stand-in for paho's client) to pin the order; a real Mosquitto shows the
same link becoming ready with nothing refused.
"""

from __future__ import annotations

import threading

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from firmware.transport.mqtt import BrokerConfig, MqttLink

GRANTED_QOS1 = ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")
NOT_AUTHORIZED = ReasonCode(PacketTypes.SUBACK, "Not authorized")
CONNACK_OK = ReasonCode(PacketTypes.CONNACK, "Success")


class RecordingPaho:
    """Records SUBSCRIBE calls as paho's client would receive them."""

    def __init__(self) -> None:
        self.subscribes: list[object] = []

    def subscribe(self, topics: object, qos: int = 0) -> tuple[int, int]:
        self.subscribes.append(topics)
        return 0, 40 + len(self.subscribes)


def _link(test_pki, broker_port: int, subs: tuple[str, ...], events: list[bool]) -> MqttLink:
    cert, key = test_pki.client("kiosk-001")
    cfg = BrokerConfig("127.0.0.1", broker_port, test_pki.cafile, cert, key)
    return MqttLink(cfg, "kiosk-001", on_message=lambda t, p: None, subscriptions=subs,
                    on_link=events.append)  # fmt: skip


def test_connack_alone_is_not_ready(test_pki):
    events: list[bool] = []
    link = _link(test_pki, 1883, ("a/+", "b/#"), events)
    paho = RecordingPaho()
    link._connected_cb(paho, None, None, CONNACK_OK)
    assert link.connected.is_set() and not link.ready.is_set()
    assert events == []  # nobody is told "up" yet
    assert paho.subscribes == [[("a/+", 1), ("b/#", 1)]]  # one SUBSCRIBE, one SUBACK
    link._subscribed_cb(paho, None, 999, [GRANTED_QOS1, GRANTED_QOS1])  # another request's
    assert not link.ready.is_set()
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1, GRANTED_QOS1])
    assert link.ready.is_set() and events == [True]


def test_a_refused_subscription_leaves_the_link_not_ready(test_pki, caplog):
    events: list[bool] = []
    link = _link(test_pki, 1883, ("a/+", "b/#"), events)
    paho = RecordingPaho()
    link._connected_cb(paho, None, None, CONNACK_OK)
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1, NOT_AUTHORIZED])
    assert not link.ready.is_set() and events == []
    assert link.refused_subscriptions == ("b/# (Not authorized)",)
    assert "refused subscription(s) b/# (Not authorized)" in caplog.text


def test_lost_link_clears_ready_and_reports_down_once(test_pki):
    events: list[bool] = []
    link = _link(test_pki, 1883, ("a/+",), events)
    paho = RecordingPaho()
    link._connected_cb(paho, None, None, CONNACK_OK)
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1])
    link._disconnected_cb(paho, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"))
    assert not link.ready.is_set() and not link.connected.is_set()
    assert events == [True, False] and link.disconnects == 1
    # Reconnected: the old SUBACK id no longer counts; the new one does.
    link._connected_cb(paho, None, None, CONNACK_OK)
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1])
    assert not link.ready.is_set()
    link._subscribed_cb(paho, None, 42, [GRANTED_QOS1])
    assert events == [True, False, True]


def test_without_subscriptions_connack_is_ready(test_pki):
    events: list[bool] = []
    link = _link(test_pki, 1883, (), events)
    link._connected_cb(RecordingPaho(), None, None, CONNACK_OK)
    assert link.ready.is_set() and events == [True]


def test_real_broker_grants_and_the_link_becomes_ready(test_pki, mtls_broker):
    events: list[bool] = []
    up = threading.Event()
    link = _link(test_pki, mtls_broker.port, ("ft/v1/t/r/kiosk-001",), events)
    link._on_link = lambda ok: (events.append(ok), up.set())
    with link:
        assert link.wait_ready(20.0)
        assert up.wait(5.0)
        assert link.refused_subscriptions == ()
        assert events == [True]
