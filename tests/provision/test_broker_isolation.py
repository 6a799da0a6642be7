"""Real Mosquitto from the generated config, real TLS: who may talk to whom."""

from __future__ import annotations

import socket
import ssl

import pytest

from firmware.client.config import ClientConfig
from firmware.transport.mqtt import MqttLink

from .helpers import WAIT, ConnectRefused, Peer

#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH
X509_V_ERR_HOSTNAME_MISMATCH = 62

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
        # The dynamic-security plugin refuses the forbidden SUBSCRIBE itself ...
        assert k2.subscribe(R1)[0].getName() == "Not authorized"
        k2.subscribe(R2)
        for i in range(10):
            assert not regional.publish(R1, b"resp%d" % i).is_failure
        assert not regional.publish(R2, b"sentinel").is_failure
        assert len(k1.wait_messages(R1, 10)) == 10
        k2.wait_messages(R2, 1)  # ... so, after the sentinel, nothing for R1 came
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


def _handshake(ctx: ssl.SSLContext, port: int, connect_to: str, name: str) -> str:
    """A TLS handshake with the broker reached at ``connect_to`` and checked as ``name``;
    returns the negotiated protocol version."""
    with socket.create_connection((connect_to, port), timeout=WAIT) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            return str(tls.version())


def test_terminal_verifies_the_broker_name(region, broker):
    """The terminal's own TLS context (``BrokerConfig.ssl_context()`` from its bundle)
    accepts the names in the broker certificate (127.0.0.1, localhost) and refuses one that
    reaches the same broker but is not in it."""
    cfg = ClientConfig.load(region.bundles["kiosk-001"] / "terminal.toml").broker
    ctx = cfg.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    for name in (cfg.host, "127.0.0.1", "localhost"):
        assert _handshake(ctx, region.port, "127.0.0.1", name).startswith("TLSv1")
    # "127.1" resolves to 127.0.0.1 (inet_aton) but is a name, not the SAN's IP address
    assert socket.gethostbyname("127.1") == "127.0.0.1"
    for wrong in ("127.1", "broker.invalid"):
        with pytest.raises(ssl.SSLCertVerificationError) as exc:
            _handshake(ctx, region.port, "127.1", wrong)
        assert exc.value.verify_code == X509_V_ERR_HOSTNAME_MISMATCH, exc.value
        assert "Hostname mismatch" in exc.value.verify_message
    # and the product's link, whose host name paho checks with that context, gets through
    link = MqttLink(cfg, "kiosk-001", on_message=lambda t, p: None)
    with link:
        assert link.wait_connected(WAIT)


def test_reload_of_the_generated_config_is_seen_in_its_own_log(region, broker):
    """The generated mosquitto.conf logs to BROKER/data/mosquitto.log: reload() finds the
    broker's 'Reloading config.' line there."""
    log = region.broker_dir / "data" / "mosquitto.log"
    assert log in broker.log_files()
    before = log.read_text().count("Reloading config.")
    broker.reload()
    assert log.read_text().count("Reloading config.") == before + 1


def test_regional_identity_reads_any_or_one_terminals_status(region, broker):
    """The regional identity (the HIL's status monitor uses it) may subscribe to every
    terminal's status or to one kiosk's; a terminal may subscribe to neither."""
    regional = region.regional_peer().connect()
    k1 = Peer.from_bundle(region.port, region.bundles["kiosk-001"]).connect()
    try:
        for f in ("ft/v1/central/status/+", "ft/v1/central/status/kiosk-001"):
            assert not regional.subscribe(f)[0].is_failure, f
            assert k1.subscribe(f)[0].getName() == "Not authorized", f
        assert not k1.publish("ft/v1/central/status/kiosk-001", b"online", retain=True).is_failure
        assert regional.wait_messages("ft/v1/central/status/kiosk-001", 1)[-1] == b"online"
    finally:
        regional.close()
        k1.close()
