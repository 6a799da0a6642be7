"""Revocation and rotation against the real broker, after a reload (SIGHUP)."""

from __future__ import annotations

import json

from cryptography import x509

from .helpers import Peer, try_connect

Q1, Q2 = "ft/v1/central/q/kiosk-001", "ft/v1/central/q/kiosk-002"


def _dynsec(region) -> dict:
    return json.loads((region.broker_dir / "dynamic-security.json").read_text())


def _terminals(region) -> dict:
    return json.loads((region.broker_dir / "terminals.json").read_text())["terminals"]


def test_revoked_terminal_is_refused_at_tls_after_reload(region, broker, capsys):
    k2 = region.bundles["kiosk-002"]
    live = Peer.from_bundle(region.port, k2, "k2-live").connect()
    try:
        assert not live.publish(Q2).is_failure
        assert region.cli("revoke", "kiosk-002") == 0
        out = capsys.readouterr().out
        assert "kill -HUP" in out and "applied to the running broker" in out
        # The session open before the revoke is closed by the broker at once ...
        live.wait_closed()
        broker.reload()
    finally:
        live.close()
    # ... and a new connection is refused during the TLS handshake (CRL).
    assert not try_connect(region.port, k2)
    log = (region.broker_dir / "data" / "mosquitto.log").read_text()
    assert "certificate verify failed" in log
    assert try_connect(region.port, region.bundles["kiosk-001"])
    # the regional service's view
    t = _terminals(region)
    assert t["kiosk-002"]["revoked"] is True
    assert t["kiosk-001"]["revoked"] is False
    users = {c["username"] for c in _dynsec(region)["clients"]}
    assert "kiosk-002" not in users and "kiosk-001" in users


def test_revoke_is_shown_by_list_and_show(region, capsys):
    assert region.cli("revoke", "kiosk-001") == 0
    capsys.readouterr()
    assert region.cli("show", "kiosk-001", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "revoked" and info["revoked_at"]
    assert [c["status"] for c in info["certificates"]] == ["revoked"]
    assert region.cli("list") == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("kiosk-001"))
    assert "revoked" in line
    crl = x509.load_pem_x509_crl((region.broker_dir / "crl.pem").read_bytes())
    serial = int(info["certificates"][0]["serial"], 16)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_rotated_terminal_works_with_its_new_identity(region, broker):
    old = region.bundles["kiosk-001"]
    new = region.root / "bundles" / "kiosk-001-v2"
    old_key = _terminals(region)["kiosk-001"]["keys"][0]["ed25519"]
    assert region.cli("rotate", "kiosk-001", "--grace", "0", "--out", str(new)) == 0
    broker.reload()
    assert try_connect(region.port, new)
    assert not try_connect(region.port, old)  # grace 0: the old certificate is in the CRL
    peer = Peer.from_bundle(region.port, new, "k1-new").connect()
    try:
        assert not peer.publish(Q1).is_failure
        assert peer.publish(Q2).is_failure
    finally:
        peer.close()
    keys = _terminals(region)["kiosk-001"]["keys"]
    assert len(keys) == 1 and keys[0]["ed25519"] != old_key and keys[0]["not_after"] is None
    assert (new / "audit.key").read_text() == (old / "audit.key").read_text()  # log continuity


def test_rotation_with_grace_keeps_the_old_identity_until_refresh(region, broker):
    old = region.bundles["kiosk-001"]
    new = region.root / "bundles" / "kiosk-001-v2"
    assert region.cli("rotate", "kiosk-001", "--grace", "2", "--out", str(new)) == 0
    broker.reload()
    assert try_connect(region.port, new) and try_connect(region.port, old)
    keys = _terminals(region)["kiosk-001"]["keys"]
    assert [k["not_after"] is None for k in keys] == [True, False]
