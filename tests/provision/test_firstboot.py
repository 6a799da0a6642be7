"""hardware/firstboot/fieldterm-firstboot.sh on a bundle written with --sd-card."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.require import need

from .helpers import provision

SCRIPT = Path(__file__).resolve().parents[2] / "hardware" / "firstboot" / "fieldterm-firstboot.sh"
GROUP = "mosquitto"  # an existing system group stands in for 'fieldterm' here


@pytest.fixture
def card(tmp_path):
    if os.geteuid() != 0:
        need("root", "the first-boot step runs as root (chown)")
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    pw.chmod(0o600)
    reg, boot = tmp_path / "reg", tmp_path / "boot"
    boot.mkdir()
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 0
    assert provision(reg, "add-terminal", "kiosk-001", "--sd-card", str(boot), passphrase=pw) == 0
    return tmp_path, boot


def _run(tmp_path: Path, boot: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        FIELDTERM_BOOT_DIRS=f"{tmp_path / 'no-such-boot'} {boot}",
        FIELDTERM_ETC=str(tmp_path / "etc" / "fieldterm"),
        FIELDTERM_USER=GROUP,
        FIELDTERM_GROUP=GROUP,
        FIELDTERM_STATE_DIR=str(tmp_path / "var"),
    )
    return subprocess.run(
        ["sh", str(SCRIPT)], check=False, env=env, capture_output=True, text=True, timeout=60
    )


def test_installs_with_owners_and_modes_and_clears_the_card(card):
    tmp_path, boot = card
    r = _run(tmp_path, boot)
    assert r.returncode == 0, r.stderr
    etc = tmp_path / "etc" / "fieldterm"
    gid = grp.getgrnam(GROUP).gr_gid
    st = etc.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (0, gid)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in etc.iterdir()}
    assert modes["client.key"] == modes["identity.key"] == modes["audit.key"] == 0o640
    assert modes["offline-list.key"] == 0o640  # the offline list's key, like the others
    bundle_key = tmp_path / "reg" / "region" / "offline-list.key"
    assert (etc / "offline-list.key").read_bytes() == bundle_key.read_bytes()
    assert modes["terminal.toml"] == modes["ca.crt"] == 0o644
    assert all(p.stat().st_gid == gid for p in etc.iterdir())
    assert not (boot / "fieldterm-bundle").exists()
    assert "installed kiosk-001" in r.stderr
    # a second boot finds nothing and changes nothing
    assert _run(tmp_path, boot).returncode == 0


def test_damaged_bundle_is_left_alone(card):
    tmp_path, boot = card
    with (boot / "fieldterm-bundle" / "ca.crt").open("ab") as fh:
        fh.write(b"x")
    r = _run(tmp_path, boot)
    assert r.returncode == 1 and "damaged" in r.stderr
    assert not (tmp_path / "etc" / "fieldterm").exists()
    assert (boot / "fieldterm-bundle" / "client.key").exists()


def test_device_made_key_survives(card):
    tmp_path, boot = card
    etc = tmp_path / "etc" / "fieldterm"
    etc.mkdir(parents=True)
    (etc / "device-made.key").write_text("kept")
    assert _run(tmp_path, boot).returncode == 0
    assert (etc / "device-made.key").read_text() == "kept"
