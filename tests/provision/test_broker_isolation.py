"""Real Mosquitto from the generated config, real TLS: who may talk to whom."""

from __future__ import annotations

import ssl

import pytest

from .helpers import ConnectRefused, Peer, try_connect

Q1, Q2 = "ft/v1/central/q/kiosk-001", "ft/v1/central/q/kiosk-002"
R1, R2 = "ft/v1/central/r/kiosk-001", "ft/v1/central/r/kiosk-002"


def test_terminal_cannot_publish_on_another_terminals_query_topic(region, broker):
    regional = region.regional_peer().connect()
    k1 = Peer.from_bundle(region.port, region.bundles["kiosk-001"]).connect()
    k2 = Peer.from_bundle(region.port, region.bundles["kiosk-002"]).connect()
    try:
        assert not regional.subscribe("$share/regional/ft/v1/central/q/+")[0].is_failure
        rc = k2.publish(Q1, b"forged")
        assert rc.is_failure and rc.getName() == "Not authorized"
        assert not k1.publish(Q1, b"own").is_failure
        assert not k2.publish(Q2, b"own2").is_failure
        # Deliveries to one subscriber keep order per publisher; once both genuine ones are in,
        # the forged one (sent before them) would have arrived if the broker had let it through.
        assert regional.wait_messages(Q1, 1) == [b"own"]
        assert regional.wait_messages(Q2, 1) == [b"own2"]
    finally:
        for p in (regional, k1, k2):
            p.close()


def test_terminal_cannot_receive_another_terminals_responses(region, broker):
    regional = region.regional_peer().connect()
    k1 = Peer.from_bundle(region.port, region.bundles["kiosk-001"]).connect()
    k2 = Peer.from_bundle(region.port, region.bundles["kiosk-002"]).connect()
    try:
        k1.subscribe(R1)
        # Mosquitto grants the forbidden SUBSCRIBE; only deliveries tell the truth.
        assert not k2.subscribe(R1)[0].is_failure
        k2.subscribe(R2)
        for i in range(10):
            assert not regional.publish(R1, b"resp%d" % i).is_failure
        assert not regional.publish(R2, b"sentinel").is_failure
        assert len(k1.wait_messages(R1, 10)) == 10
        k2.wait_messages(R2, 1)  # after the sentinel, nothing for R1 is still in flight
        assert k2.count(R1) == 0
        # and a terminal cannot answer in the regional's name either
        assert k2.publish(R2, b"self-made verdict").is_failure
    finally:
        for p in (regional, k1, k2):
            p.close()


def test_client_without_certificate_is_refused(region, broker):
    anon = Peer(region.port, region.broker_dir / "ca.crt", None, None, "anon")
    with pytest.raises(ConnectRefused):
        anon.connect()


def test_client_with_a_foreign_ca_is_refused(region, broker, test_pki):
    cert, key = test_pki.client("kiosk-001")  # same CN, other CA
    intruder = Peer(region.port, region.broker_dir / "ca.crt", cert, key, "intruder")
    with pytest.raises(ConnectRefused):
        intruder.connect()


def test_terminal_verifies_the_broker_name(region, broker):
    """The broker certificate carries 127.0.0.1 and localhost; a terminal checks it."""
    ctx = ssl.create_default_context(cafile=str(region.bundles["kiosk-001"] / "ca.crt"))
    assert ctx.check_hostname
    assert try_connect(region.port, region.bundles["kiosk-001"])
