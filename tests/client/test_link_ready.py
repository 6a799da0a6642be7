"""``MqttLink`` is ready only when the broker has granted its subscriptions (SUBACK).

A link reported "up" at CONNACK could be handed a query or a response before its
subscription exists, and the broker would drop it. The callbacks are driven directly
(a recording stand-in for paho's client) to pin the order; a real Mosquitto shows the
same link becoming ready with nothing refused.
"""

from __future__ import annotations

import queue
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


# -- dynamic subscriptions (issue 12: the offline list's chunks) ---------------------------
class RecordingClient(RecordingPaho):
    """Stands in for the link's own paho client: SUBSCRIBE/UNSUBSCRIBE and the routes."""

    def __init__(self) -> None:
        super().__init__()
        self.unsubscribes: list[list[str]] = []
        self.routes: dict[str, object] = {}

    def message_callback_add(self, sub: str, callback: object) -> None:
        self.routes[sub] = callback

    def message_callback_remove(self, sub: str) -> None:
        self.routes.pop(sub, None)

    def unsubscribe(self, topics: list[str]) -> tuple[int, int]:
        self.unsubscribes.append(topics)
        return 0, 90 + len(self.unsubscribes)


def _ready_link(test_pki, events: list[bool]) -> tuple[MqttLink, RecordingClient]:
    link = _link(test_pki, 1883, ("a/+",), events)
    paho = RecordingClient()
    link._client = paho  # type: ignore[assignment]
    link._connected_cb(paho, None, None, CONNACK_OK)
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1])
    assert link.ready.is_set()
    return link, paho


def test_a_dynamic_subscription_is_granted_apart_from_ready(test_pki):
    events: list[bool] = []
    link, paho = _ready_link(test_pki, events)
    results: list[tuple[str, bool, str]] = []
    link.add_subscription("c/1", lambda t, p: None, lambda *r: results.append(r))
    assert paho.subscribes[-1] == [("c/1", 1)] and "c/1" in paho.routes
    link._subscribed_cb(paho, None, 42, [GRANTED_QOS1])
    assert results == [("c/1", True, "Granted QoS 1")]
    assert link.ready.is_set() and events == [True]  # ready is the main subscription's


def test_a_refused_dynamic_subscription_is_reported_and_logged(test_pki, caplog):
    events: list[bool] = []
    link, paho = _ready_link(test_pki, events)
    results: list[tuple[str, bool, str]] = []
    link.add_subscription("c/2", lambda t, p: None, lambda *r: results.append(r))
    link._subscribed_cb(paho, None, 42, [NOT_AUTHORIZED])
    assert results == [("c/2", False, "Not authorized")]
    assert "refused subscription c/2 (Not authorized)" in caplog.text
    assert link.ready.is_set() and events == [True]  # the link itself stays ready


def test_dynamic_subscriptions_are_made_again_after_a_reconnect(test_pki):
    events: list[bool] = []
    link = _link(test_pki, 1883, ("a/+",), events)
    paho = RecordingClient()
    link._client = paho  # type: ignore[assignment]
    link.add_subscription("c/1", lambda t, p: None)  # before the first CONNACK: none sent
    link.add_subscription("c/2", lambda t, p: None)
    assert paho.subscribes == []
    link._connected_cb(paho, None, None, CONNACK_OK)
    assert paho.subscribes == [[("a/+", 1)], [("c/1", 1), ("c/2", 1)]]
    link._subscribed_cb(paho, None, 41, [GRANTED_QOS1])
    link.remove_subscription("c/1")
    assert paho.unsubscribes == [["c/1"]] and "c/1" not in paho.routes
    link._unsubscribed_cb(paho, None, 91)  # UNSUBACK: c/1 is gone at the broker
    link._disconnected_cb(paho, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"))
    link.remove_subscription("c/2")  # while down: not made again, and the kept session...
    link.add_subscription("c/3", lambda t, p: None)
    assert paho.unsubscribes == [["c/1"]] and len(paho.subscribes) == 2
    link._connected_cb(paho, None, None, CONNACK_OK)
    assert paho.subscribes[2:] == [[("a/+", 1)], [("c/3", 1)]]
    assert paho.unsubscribes[1:] == [["c/2"]]  # ...is told to drop it
    assert link.dynamic_subscriptions() == ("c/3",)
    # the old connection's SUBACK ids do not count; the main one still makes it ready
    link._subscribed_cb(paho, None, 43, [GRANTED_QOS1])
    assert link.ready.is_set() and events == [True, False, True]


def test_real_broker_routes_dynamic_subscriptions_apart_from_on_message(test_pki, mtls_broker):
    main: queue.Queue[tuple[str, bytes]] = queue.Queue()
    extra: queue.Queue[tuple[str, bytes]] = queue.Queue()
    granted: queue.Queue[tuple[str, bool, str]] = queue.Queue()
    cert, key = test_pki.client("kiosk-001")
    cfg = BrokerConfig("127.0.0.1", mtls_broker.port, test_pki.cafile, cert, key)
    pcert, pkey = test_pki.client("publisher")
    pcfg = BrokerConfig("127.0.0.1", mtls_broker.port, test_pki.cafile, pcert, pkey)
    link = MqttLink(cfg, "kiosk-001", on_message=lambda t, p: main.put((t, p)),
                    subscriptions=("main/t",))  # fmt: skip
    with link, MqttLink(pcfg, "publisher", on_message=lambda t, p: None) as pub:
        assert link.wait_ready(20.0) and pub.wait_ready(20.0)
        pub.publish("extra/1", b"retained", retain=True).wait_for_publish(10.0)
        link.add_subscription("extra/+", lambda t, p: extra.put((t, p)),
                              lambda *r: granted.put(r))  # fmt: skip
        assert granted.get(timeout=10.0) == ("extra/+", True, "Granted QoS 1")
        assert extra.get(timeout=10.0) == ("extra/1", b"retained")  # sent on subscription
        pub.publish("extra/2", b"live")
        pub.publish("main/t", b"response")
        assert extra.get(timeout=10.0) == ("extra/2", b"live")
        assert main.get(timeout=10.0) == ("main/t", b"response")
        link.remove_subscription("extra/+")
        pub.publish("extra/3", b"after")
        pub.publish("main/t", b"marker")  # same publisher: delivered after extra/3 would be
        # (extra/3 may still reach the link before the UNSUBACK: dropped, not on_message's)
        assert main.get(timeout=10.0) == ("main/t", b"marker")
        assert extra.empty() and main.empty()
        pub.publish("extra/1", b"", retain=True).wait_for_publish(10.0)


def test_messages_for_a_removed_subscription_never_reach_on_message(test_pki):
    got: list[str] = []
    cert, key = test_pki.client("kiosk-001")
    cfg = BrokerConfig("127.0.0.1", 1883, test_pki.cafile, cert, key)
    link = MqttLink(cfg, "kiosk-001", on_message=lambda t, p: got.append(t), subscriptions=("a",))
    paho = RecordingClient()
    link._client = paho  # type: ignore[assignment]
    link._connected_cb(paho, None, None, CONNACK_OK)
    link.add_subscription("list/+/7", lambda t, p: None)
    link.remove_subscription("list/+/7")
    msg = type("Msg", (), {"topic": "list/full/7", "payload": b"x"})
    link._message_cb(paho, None, msg)  # in flight before the UNSUBACK: dropped
    link._message_cb(paho, None, type("Msg", (), {"topic": "a", "payload": b"r"}))
    assert got == ["a"]
