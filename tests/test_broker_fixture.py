"""The Mosquitto fixture itself: mTLS with client certificates, refusal without one, restart."""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.support.broker import Mosquitto
from tests.support.pki import make_test_pki


def _tls_ctx(pki, cert=None, key=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.cafile))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            # MQTT v5 CONNECT with client id "t"; a CONNACK proves the TLS session was accepted.
            s.sendall(bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 30, 0, 0, 1]) + b"t")
            return s.recv(16)


def test_mtls_broker_accepts_client_cert_refuses_none_and_restarts(tmp_path):
    pki = make_test_pki(tmp_path / "pki")
    cert, key = pki.client("kiosk-001")
    with Mosquitto(tmp_path / "broker", tls=pki.broker_tls) as broker:
        assert _handshake(broker.port, _tls_ctx(pki, cert, key))[:1] == b"\x20"  # CONNACK
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            data = _handshake(broker.port, _tls_ctx(pki))
            if not data:  # TLS 1.3 reports the missing certificate on first read
                raise ConnectionError("closed")
        port = broker.port
        broker.stop()
        broker.start()
        assert broker.port == port
        assert _handshake(broker.port, _tls_ctx(pki, cert, key))[:1] == b"\x20"
