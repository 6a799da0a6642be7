"""What provisioning writes: bundle files and modes, configs, key formats, CSR path."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import stat
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import NameOID

from firmware.config import ConfigDoc
from host_tools.provision.authority import BundleTarget, RegionAuthority, TerminalOptions

from .helpers import provision

BUNDLE_MODES = {
    "MANIFEST.sha256": 0o644,
    "alert-desk.pub": 0o644,  # the desk's key (made at init): telemetry is sealed to it
    "audit.key": 0o600,
    "ca.crt": 0o644,
    "client.crt": 0o644,
    "client.key": 0o600,
    "identity.key": 0o600,
    "offline-list.key": 0o600,
    "regional-kem.pub": 0o644,
    "regional-sign.pub": 0o644,
    "terminal.toml": 0o644,
}


def _modes(d: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}


def test_bundle_files_modes_and_formats(region):
    b = region.bundles["kiosk-001"]
    assert _modes(b) == BUNDLE_MODES
    assert stat.S_IMODE(b.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificate((b / "client.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kiosk-001"
    key = serialization.load_pem_private_key((b / "client.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    ident = serialization.load_pem_private_key((b / "identity.key").read_bytes(), None)
    assert isinstance(ident, ed25519.Ed25519PrivateKey)
    assert b"BEGIN PRIVATE KEY" in (b / "identity.key").read_bytes()  # PKCS#8
    kem = serialization.load_pem_public_key((b / "regional-kem.pub").read_bytes())
    sign = serialization.load_pem_public_key((b / "regional-sign.pub").read_bytes())
    assert isinstance(kem, x25519.X25519PublicKey) and isinstance(sign, ed25519.Ed25519PublicKey)
    audit = (b / "audit.key").read_text().strip()
    assert len(audit) == 64 and bytes.fromhex(audit)
    # the manifest the first-boot step checks
    for line in (b / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((b / name).read_bytes()).hexdigest() == digest


def test_pinned_regional_keys_match_the_regional_private_keys(region):
    b, d = region.bundles["kiosk-002"], region.broker_dir
    for name in ("regional-kem", "regional-sign"):
        priv = serialization.load_pem_private_key((d / f"{name}.key").read_bytes(), None)
        pub = serialization.load_pem_public_key((b / f"{name}.pub").read_bytes())
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        assert priv.public_key().public_bytes(*raw) == pub.public_bytes(*raw)
    assert stat.S_IMODE((d / "regional-kem.key").stat().st_mode) == 0o600
    assert len((d / "index.key").read_text().strip()) == 64


def test_terminal_toml_loads_with_the_shared_config_loader(region):
    doc = ConfigDoc.load(region.bundles["kiosk-001"] / "terminal.toml")
    term, broker, proto = doc.section("terminal"), doc.section("broker"), doc.section("protocol")
    assert term.text("id") == "kiosk-001" and term.text("region") == "central"
    assert broker.integer("port") == region.port  # broker-config pointed it at the broker
    assert broker.path("key") == region.bundles["kiosk-001"] / "client.key"
    assert proto.path("identity_key").exists()


def test_mosquitto_conf_paths_are_absolute_and_exist(region):
    conf = (region.broker_dir / "mosquitto.conf").read_text().splitlines()
    keys = {
        "plugin",
        "plugin_opt_config_file",
        "cafile",
        "certfile",
        "keyfile",
        "crlfile",
        "persistence_location",
    }
    seen = set()
    for line in conf:
        k, _, v = line.partition(" ")
        if k in keys:
            seen.add(k)
            assert Path(v).is_absolute() and Path(v).exists(), line
    assert seen == keys
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    assert f"listener {region.port} 127.0.0.1" in conf
    # the regional service's own loopback listener; client ids bound on the terminals' one
    assert f"listener {region.service_port} 127.0.0.1" in conf
    assert conf.count("use_username_as_clientid true") == 1
    assert "acl_file" not in "\n".join(conf)  # it grants every SUBSCRIBE: not used here


def test_regional_toml_and_terminals_json(region):
    doc = tomllib.loads((region.broker_dir / "regional.toml").read_text())
    assert doc["regional"]["region"] == "central"
    assert doc["broker"]["cert"] == "regional.crt" and doc["broker"]["port"] == region.service_port
    cert = x509.load_pem_x509_certificate((region.broker_dir / "regional.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "regional"
    tj = json.loads((region.broker_dir / "terminals.json").read_text())
    assert tj["version"] == 1 and set(tj["terminals"]) == {"kiosk-001", "kiosk-002"}
    k = tj["terminals"]["kiosk-001"]["keys"][0]
    ident = serialization.load_pem_private_key(
        (region.bundles["kiosk-001"] / "identity.key").read_bytes(), None
    )
    raw = ident.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(k["ed25519"]) == raw and k["not_after"] is None


def test_csr_path_keeps_the_device_key_on_the_device(region, capsys):
    device_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk-003")]))
        .sign(device_key, hashes.SHA256())
    )
    csr_file = region.root / "kiosk-003.csr"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = region.root / "bundles" / "kiosk-003"
    assert region.cli("add-terminal", "kiosk-003", "--csr", str(csr_file), "--out", str(out)) == 0
    assert "client.key" not in _modes(out)
    cert = x509.load_pem_x509_certificate((out / "client.crt").read_bytes())
    assert cert.public_key().public_numbers() == device_key.public_key().public_numbers()
    # a request for another CN is refused
    other = region.root / "other.csr"
    csr2 = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk-009")]))
        .sign(device_key, hashes.SHA256())
    )
    other.write_bytes(csr2.public_bytes(serialization.Encoding.PEM))
    capsys.readouterr()
    assert (
        region.cli(
            "add-terminal", "kiosk-004", "--csr", str(other), "--out", str(region.root / "x")
        )
        == 4
    )
    assert "CN='kiosk-009'" in capsys.readouterr().err


def test_grace_period_ends_at_refresh(region):
    """Old key listed until now+grace; the old certificate enters the CRL at the first
    refresh after the grace period (clock injected, no sleeping)."""
    pw = region.passphrase.read_text().strip().encode()
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with RegionAuthority.open(region.registry, pw, clock=lambda: t0) as r:
        old_serials = [c.serial for c in r.reg.certs("kiosk-001")]
        r.rotate("kiosk-001", BundleTarget(out=region.root / "v2"), TerminalOptions(), 2)
        assert [c.status(t0) for c in r.reg.certs("kiosk-001")] == ["grace", "active"]
    later = t0 + dt.timedelta(hours=2, seconds=1)
    with RegionAuthority.open(region.registry, pw, clock=lambda: later) as r:
        with r.reg.transaction():
            pem = r.sign_crl()
        keys = [k for k in r.reg.keys("kiosk-001") if k.not_after is None or k.not_after > later]
        assert len(keys) == 1
    crl = x509.load_pem_x509_crl(pem)
    assert crl.get_revoked_certificate_by_serial_number(old_serials[0]) is not None


def test_list_and_show_print_expiry(region, capsys):
    capsys.readouterr()
    assert provision(region.registry, "list") == 0
    out = capsys.readouterr().out
    assert "kiosk-001" in out and "kiosk-002" in out and "active" in out
    assert provision(region.registry, "show", "kiosk-002") == 0
    out = capsys.readouterr().out
    assert "certificates" in out and "identity keys" in out
    assert "BEGIN" not in out and "PRIVATE" not in out  # never a key on screen


def test_terminal_toml_is_a_valid_agent_config(region):
    """``fieldterm agent --config bundle/terminal.toml`` accepts it (every key known)."""
    from firmware.agent.config import load_agent_config  # noqa: PLC0415 -- after the skip

    cfg = load_agent_config(region.bundles["kiosk-001"] / "terminal.toml", environ={})
    assert cfg.terminal_id == "kiosk-001" and cfg.region == "central"


def test_rotate_keeps_language_and_scanner(region):
    out, new = region.root / "bundles" / "kiosk-005", region.root / "bundles" / "kiosk-005b"
    argv = ("--language", "ru", "--scanner-port", "socket://127.0.0.1:7000")
    assert (
        region.cli("add-terminal", "kiosk-005", "--site", "post-9", "--out", str(out), *argv) == 0
    )
    assert region.cli("rotate", "kiosk-005", "--sd-card", str(_card(region))) == 0
    doc = tomllib.loads((_card(region) / "fieldterm-bundle" / "terminal.toml").read_text())
    assert doc["terminal"]["language"] == "ru" and doc["terminal"]["site"] == "post-9"
    assert doc["scanner"]["port"] == "socket://127.0.0.1:7000"
    assert not new.exists()


def _card(region) -> Path:
    card = region.root / "boot"
    card.mkdir(exist_ok=True)
    return card


def test_terminals_address_and_regional_loopback_can_differ(region, tmp_path):
    """A broker reached by terminals at a forwarded address (NAT, the HIL's slirp) but bound
    to loopback: bundles name the terminals' address, regional.toml connects over loopback
    (the broker certificate names both)."""
    out = tmp_path / "nat-broker"
    rc = provision(
        region.registry, "broker-config", "--out", str(out), "--host", "10.0.2.100",
        "--port", str(region.port), "--bind", "127.0.0.1", passphrase=region.passphrase,
    )  # fmt: skip
    assert rc == 0
    assert f"listener {region.port} 127.0.0.1" in (out / "mosquitto.conf").read_text()
    assert tomllib.loads((out / "regional.toml").read_text())["broker"]["host"] == "127.0.0.1"
    bundle = tomllib.loads((region.bundles["kiosk-001"] / "terminal.toml").read_text())
    assert bundle["broker"]["host"] == "10.0.2.100"
    cert = x509.load_pem_x509_certificate((out / "broker.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"10.0.2.100", "127.0.0.1"} <= names


def test_dynamic_security_file_grants_literal_rights_and_refuses_the_rest(region):
    state = json.loads((region.broker_dir / "dynamic-security.json").read_text())
    assert set(state["defaultACLAccess"].values()) == {False, True}
    assert state["defaultACLAccess"]["subscribe"] is False
    assert state["defaultACLAccess"]["publishClientReceive"] is False
    users = {c["username"]: [r["rolename"] for r in c["roles"]] for c in state["clients"]}
    assert users == {
        "broker-admin": ["broker-admin"],
        "regional": ["regional"],
        "alert-desk": ["alert-desk"],
        "alert-console": ["alert-console"],
        "kiosk-001": ["terminal.kiosk-001"],
        "kiosk-002": ["terminal.kiosk-002"],
    }
    roles = {r["rolename"]: r["acls"] for r in state["roles"]}
    subs = {a["topic"] for a in roles["terminal.kiosk-001"] if a["acltype"].startswith("sub")}
    assert subs == {"ft/v1/central/r/kiosk-001", "ft/v1/central/list/#"}
    # the desk reads the alerts; the console (its own identity) also the fleet's reports
    assert {(a["acltype"], a["topic"]) for a in roles["alert-desk"]} == {
        ("subscribeLiteral", "ft/v1/central/alert"),
        ("publishClientReceive", "ft/v1/central/alert"),
    }
    console = {(a["acltype"], a["topic"]) for a in roles["alert-console"]}
    assert {t for kind, t in console if kind.startswith("subscribe")} == {
        "ft/v1/central/alert", "ft/v1/central/status/+", "ft/v1/central/telemetry/+",
    }  # fmt: skip
    assert not [kind for kind, _ in console if kind == "publishClientSend"]
    regional_subs = {a["topic"] for a in roles["regional"] if a["acltype"] == "subscribeLiteral"}
    assert "$share/regional/ft/v1/central/q/+" in regional_subs
    assert "ft/v1/central/q/+" not in regional_subs  # only through its shared group
    assert all(a["allow"] is True for acls in roles.values() for a in acls)
