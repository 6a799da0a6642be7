"""Attacks on what one certificate can cost the others: taking over another kiosk's
client id, and sending messages larger than any the protocol needs."""

from __future__ import annotations

import re

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.protocol import topics
from host_tools.provision import broker_config as bc
from tests.provision.helpers import Peer

from .broker_rig import attack_region, expected, honest_queries, hostile

__all__ = ["attack_region"]


def test_client_id_takeover_is_refused(attack_region):
    """kiosk-003's certificate asks for client id kiosk-002: the broker names the session
    after the certificate (``use_username_as_clientid``), so kiosk-002 stays connected."""
    region = attack_region
    victim = hostile(region, "kiosk-002", "kiosk-002")
    r2 = topics.response_topic(region.region, "kiosk-002")
    assert not victim.subscribe(r2)[0].is_failure
    thief = hostile(region, "kiosk-003", "kiosk-002")
    try:
        # a round trip on the victim after the thief's CONNACK: it is still connected
        assert not victim.publish(topics.status_topic(region.region, "kiosk-002")).is_failure
        assert not victim.closed and victim.disconnect_reason is None
        log = region.broker_dir / "data" / "mosquitto.log"
        seen = re.findall(
            r"New client connected from \S+ as (\S+) \(.*u'kiosk-003'\)", log.read_text()
        )
        assert seen == ["kiosk-003"], seen  # not "kiosk-002"
        # and the thief, under its own name, gets nothing of the victim's
        assert thief.subscribe(r2)[0].getName() == "Not authorized"
    finally:
        thief.close()
        victim.close()
    assert honest_queries(region, "kiosk-002", 2, 2) == expected(2, 2)


def test_oversize_message_costs_the_sender_its_connection(attack_region):
    """The broker announces its packet limit and disconnects a client that sends more."""
    region = attack_region
    big = hostile(region, "kiosk-002", "kiosk-002")
    try:
        # bypass paho's own check of the announced limit: send the packet as an attacker would
        big.client._max_packet_size = 0
        info = big.client.publish(
            topics.query_topic(region.region, "kiosk-002"),
            b"\0" * (bc.MAX_PACKET_SIZE + 1),
            qos=1,
            properties=Properties(PacketTypes.PUBLISH),
        )
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        big.wait_closed()
    finally:
        big.close()
    # Mosquitto 2.0.11 closes the socket without a DISCONNECT packet; its log says why
    log = (region.broker_dir / "data" / "mosquitto.log").read_text()
    assert "Client kiosk-002 disconnected due to oversize packet." in log
    assert honest_queries(region, "kiosk-001", 2, 2) == expected(2, 2)


def test_the_packet_limit_is_announced_and_fits_the_largest_honest_message(attack_region):
    region = attack_region
    peer = Peer.from_bundle(region.port, region.bundle("kiosk-001"), "kiosk-001")
    got: dict[str, int] = {}
    peer.client.on_connect = lambda c, u, f, rc, props=None: (
        got.update(max_packet=getattr(props, "MaximumPacketSize", 0))
        or Peer._on_connect(peer, c, u, f, rc, props)
    )
    peer.connect()
    peer.close()
    assert got["max_packet"] == bc.MAX_PACKET_SIZE
    chunk = int(bc.REGIONAL_OFFLINE["chunk_size"])
    assert chunk + 16 * 1024 < bc.MAX_PACKET_SIZE  # an offline-list chunk and its envelope
