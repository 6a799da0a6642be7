"""``fieldterm provision add-annunciator``: the panel's directory, the site key shared
with the site's kiosks, the broker ACL lines, revoke."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware.agent.config import load_agent_config
from firmware.lane.keyring import parse_ring
from tests.support.localregion import TestRegion

LANES = ("kiosk-001", "kiosk-002")


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    args = {t: ["--site", "post-1"] for t in LANES} | {"kiosk-009": ["--site", "post-2"]}
    r = TestRegion(
        tmp_path_factory.mktemp("prov"),
        terminals=(*LANES, "kiosk-009", "kiosk-100"),
        terminal_args=args,
    )
    r.provision()
    r.provision_cmd(
        "panel", "add-annunciator", "panel-1", "--site", "post-1",
        "--lanes", "kiosk-001,kiosk-002", "--out", str(r.dir / "panel-1"),
    )  # fmt: skip
    yield r
    r.close()


def test_panel_directory_is_der_and_config(region):
    d = region.dir / "panel-1"
    cert = x509.load_der_x509_certificate((d / "panel.der").read_bytes())
    assert (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "annunciator.panel-1"
    )
    key = serialization.load_der_private_key((d / "panel.key.der").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    root = x509.load_der_x509_certificate((d / "ca.der").read_bytes())
    assert root.subject == root.issuer  # the region's root, the panel's trust anchor
    assert (d / "panel.key.der").stat().st_mode & 0o077 == 0
    cfg = json.loads((d / "annunciator.json").read_text())
    assert cfg["lanes"] == [
        {"id": "kiosk-001", "topic": "ft/v1/central/lane/post-1/kiosk-001"},
        {"id": "kiosk-002", "topic": "ft/v1/central/lane/post-1/kiosk-002"},
    ]
    assert cfg["ack_topic"] == "ft/v1/central/lane-ack/post-1/panel-1"
    assert cfg["client_id"] == "annunciator.panel-1" and cfg["server_hostname"] == "127.0.0.1"


def test_site_key_is_shared_with_the_sites_kiosks_only(region):
    panel_key = (region.dir / "panel-1" / "lane.key").read_text()
    ring = parse_ring(panel_key)
    assert ring.send == 1 and ring.ids() == (1,) and len(ring.keys[0][1]) == 32
    for tid in LANES:
        assert (region.bundle(tid) / "lane.key").read_text() == panel_key
    assert (region.bundle("kiosk-009") / "lane.key").read_text() != panel_key
    assert not (region.bundle("kiosk-100") / "lane.key").exists()  # no site, no key


def test_sited_kiosk_config_loads_with_its_lane(region):
    cfg = load_agent_config(region.terminal_toml("kiosk-002"))
    assert cfg.lane.site == "post-1" and cfg.lane.interval == 2.0
    assert cfg.lane.key == region.bundle("kiosk-002") / "lane.key"
    assert load_agent_config(region.terminal_toml("kiosk-100")).lane is None


def _grants(region) -> dict[str, set[tuple[str, str]]]:
    """CN -> its (acltype, topic) grants in the regional broker's dynamic-security file."""
    state = json.loads((region.broker_dir / "dynamic-security.json").read_text())
    roles = {r["rolename"]: r["acls"] for r in state["roles"]}
    return {
        c["username"]: {
            (a["acltype"], a["topic"]) for r in c["roles"] for a in roles[r["rolename"]]
        }
        for c in state["clients"]
    }


def test_acl_grants(region):
    g = _grants(region)
    assert g["annunciator.panel-1"] == {
        ("subscribeLiteral", "ft/v1/central/lane/post-1/kiosk-001"),
        ("publishClientReceive", "ft/v1/central/lane/post-1/kiosk-001"),
        ("subscribeLiteral", "ft/v1/central/lane/post-1/kiosk-002"),
        ("publishClientReceive", "ft/v1/central/lane/post-1/kiosk-002"),
        ("publishClientSend", "ft/v1/central/lane-ack/post-1/panel-1"),
    }
    assert ("publishClientSend", "ft/v1/central/lane/post-1/kiosk-002") in g["kiosk-002"]
    assert ("subscribeLiteral", "ft/v1/central/lane-ack/post-1/+") in g["kiosk-002"]
    assert ("subscribeLiteral", "ft/v1/central/lane-ack/post-2/+") in g["kiosk-009"]
    assert not any("lane" in t for _, t in g["kiosk-100"])  # no site, no lane


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ("kiosk-001,kiosk-009", "--lanes item 2 (kiosk-009): that kiosk is at site 'post-2'"),
        ("kiosk-001,kiosk-404", "--lanes item 2 (kiosk-404): no active terminal"),
        ("kiosk-001,Kiosk", "--lanes item 2"),
        ("kiosk-001,kiosk-001", "named twice"),
    ],
)
def test_bad_lanes_are_refused_naming_the_item(region, capsys, lanes, message):
    out = region.dir / "bad"
    rc = region.cli(
        "add-annunciator", "panel-9", "--site", "post-1", "--lanes", lanes, "--out", str(out)
    )
    assert rc != 0 and message in capsys.readouterr().err
    assert not out.exists()


def test_duplicate_panel_is_refused(region, capsys):
    rc = region.cli(
        "add-annunciator",
        "panel-1",
        "--site",
        "post-1",
        "--lanes",
        "kiosk-001",
        "--out",
        str(region.dir / "dup"),
    )
    assert rc != 0 and "already exists" in capsys.readouterr().err


def test_revoke_cuts_a_panel_off(region, capsys):
    region.provision_cmd(
        "panel", "add-annunciator", "panel-2", "--site", "post-2",
        "--lanes", "kiosk-009", "--out", str(region.dir / "panel-2"),
    )  # fmt: skip
    serial = x509.load_der_x509_certificate(
        (region.dir / "panel-2" / "panel.der").read_bytes()
    ).serial_number
    assert "annunciator.panel-2" in _grants(region)
    assert region.cli("revoke", "panel-2") == 0
    assert "annunciator panel-2 revoked" in capsys.readouterr().out
    assert "annunciator.panel-2" not in _grants(region)
    crl = x509.load_pem_x509_crl((region.broker_dir / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert "annunciator.panel-1" in _grants(region)


def test_discreet_kiosk_is_off_by_default_and_can_be_turned_on(region):
    toml = region.terminal_toml("kiosk-002")
    assert load_agent_config(toml).signals.discreet is False
    assert load_agent_config(toml, overrides={"signals": {"discreet": True}}).signals.discreet


def test_panel_at_a_site_with_its_own_broker_connects_there(region, tmp_path):
    """Like the site's kiosks: a site broker bridged to the regional one (broker-config
    --site-bridge) is where the lane frames flow, so the panel is pointed at it."""
    site_dir = tmp_path / "site-broker"
    region.provision_cmd(
        "site broker", "broker-config", "--out", str(site_dir), "--host", "10.1.2.3",
        "--port", "8884", "--site-bridge", "post-2", "--upstream", "127.0.0.1:8883",
    )  # fmt: skip
    out = region.dir / "panel-site"
    region.provision_cmd(
        "panel", "add-annunciator", "panel-3", "--site", "post-2",
        "--lanes", "kiosk-009", "--out", str(out),
    )  # fmt: skip
    cfg = json.loads((out / "annunciator.json").read_text())
    assert (cfg["host"], cfg["port"], cfg["server_hostname"]) == ("10.1.2.3", 8884, "10.1.2.3")
    acl = (site_dir / "mosquitto.acl").read_text()
    assert "user annunciator.panel-3" in acl and "user annunciator.panel-1" not in acl


def _rotate(region, capsys, *flags):
    rc = region.cli("rotate-site-key", "--site", "post-1", *flags)
    out = capsys.readouterr()
    return rc, out.out + out.err


def _manifest_ok(directory):
    lines = (directory / "MANIFEST.sha256").read_text().splitlines()
    want = {n: h for h, n in (line.split("  ") for line in lines)}
    return want["lane.key"] == hashlib.sha256((directory / "lane.key").read_bytes()).hexdigest()


def test_rotate_site_key_in_three_steps_rewrites_the_sites_devices_only(region, capsys):
    devices = [region.bundle(t) for t in LANES] + [region.dir / "panel-1"]
    other = (region.bundle("kiosk-009") / "lane.key").read_text()
    old = parse_ring((region.dir / "panel-1" / "lane.key").read_text())
    # out of order: nothing to switch to or finish yet
    rc, text = _rotate(region, capsys, "--switch")
    assert rc != 0 and "the site is steady (keys 1, sending under 1)" in text
    assert "run it without --switch/--finish" in text

    rc, text = _rotate(region, capsys)  # 1: stage a new key
    assert rc == 0 and "new key 2 staged: devices accept 1,2, still send under 1" in text
    assert "then run rotate-site-key --site post-1 --switch" in text
    for d in devices:
        ring = parse_ring((d / "lane.key").read_text())
        assert (ring.send, ring.ids(), ring.keys[0]) == (1, (1, 2), old.keys[0])
        assert _manifest_ok(d) and (d / "lane.key").stat().st_mode & 0o077 == 0
        assert str(d / "lane.key") in text
    rc, text = _rotate(region, capsys, "--finish")
    assert rc != 0 and "is staged" in text and "with --switch next" in text

    assert _rotate(region, capsys, "--switch")[0] == 0  # 2: send under the new key
    staged = parse_ring((devices[0] / "lane.key").read_text())
    assert (staged.send, staged.ids()) == (2, (1, 2))
    rc, text = _rotate(region, capsys, "--finish")  # 3: the old key goes
    assert rc == 0 and "only key 2 is accepted" in text
    for d in devices:
        ring = parse_ring((d / "lane.key").read_text())
        assert (ring.send, ring.ids()) == (2, (2,)) and ring.keys[0] == staged.keys[1]
        assert ring.keys[0][1] != old.keys[0][1] and _manifest_ok(d)
    assert (region.bundle("kiosk-009") / "lane.key").read_text() == other  # another site
    # a device added now gets the ring in force
    region.provision_cmd(
        "panel", "add-annunciator", "panel-4", "--site", "post-1",
        "--lanes", "kiosk-001", "--out", str(region.dir / "panel-4"),
    )  # fmt: skip
    assert (region.dir / "panel-4" / "lane.key").read_text() == (
        devices[0] / "lane.key"
    ).read_text()


def test_rotate_site_key_skips_revoked_panels_and_names_gone_directories(region, capsys):
    region.provision_cmd(
        "panel", "add-annunciator", "panel-5", "--site", "post-1",
        "--lanes", "kiosk-002", "--out", str(region.dir / "panel-5"),
    )  # fmt: skip
    assert region.cli("revoke", "panel-5") == 0
    assert "run 'rotate-site-key --site post-1'" in capsys.readouterr().out
    before = (region.dir / "panel-5" / "lane.key").read_text()
    gone = region.dir / "panel-4"
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    rc, text = _rotate(region, capsys)
    assert rc == 0 and f"not written (directory gone): panel panel-4 ({gone})" in text
    assert (region.dir / "panel-5" / "lane.key").read_text() == before
    for step in ("--switch", "--finish"):
        assert _rotate(region, capsys, step)[0] == 0
    assert parse_ring(before).ids() == (2,)
    assert parse_ring((region.bundle("kiosk-001") / "lane.key").read_text()).ids() == (3,)


def test_rotate_site_key_of_an_unknown_site_is_refused(region, capsys):
    rc = region.cli("rotate-site-key", "--site", "post-77")
    assert rc != 0 and "--site post-77: no kiosk or panel" in capsys.readouterr().err
