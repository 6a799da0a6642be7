"""Errors a technician can act on, and nothing half-written when one happens."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.errors import SetupError
from host_tools.provision import atomic, bundle
from host_tools.provision.authority import BundleTarget, RegionAuthority, TerminalOptions

from .helpers import provision


@pytest.fixture
def reg(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    r = tmp_path / "reg"
    assert provision(r, "init", "--region", "central", passphrase=pw) == 0
    return r, pw


def _terminal_rows(registry):
    with sqlite3.connect(registry / "registry.sqlite") as c:
        return [r[0] for r in c.execute("SELECT id FROM terminals")]


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_duplicate_id_says_rotate(reg, tmp_path, capsys):
    r, pw = reg
    assert (
        provision(r, "add-terminal", "kiosk-001", "--out", str(tmp_path / "a"), passphrase=pw) == 0
    )
    assert (
        provision(r, "add-terminal", "kiosk-001", "--out", str(tmp_path / "b"), passphrase=pw) == 4
    )
    err = _err(capsys)
    assert "already exists" in err and "rotate kiosk-001" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "bad", ["Kiosk-1", "-kiosk", "kiosk_1", "kiosk.1", "a" * 64, "", "kiosk 1"]
)
def test_illegal_id_names_the_rule(reg, tmp_path, capsys, bad):
    r, pw = reg
    argv = ("add-terminal", "--out", str(tmp_path / "x"), "--", bad)
    assert provision(r, *argv, passphrase=pw) == 4
    assert "lowercase letters, digits and '-'" in _err(capsys)
    assert _terminal_rows(r) == []


def test_reserved_id_is_refused(reg, tmp_path, capsys):
    r, pw = reg
    assert (
        provision(r, "add-terminal", "regional", "--out", str(tmp_path / "x"), passphrase=pw) == 4
    )
    assert "reserved" in _err(capsys)


def test_wrong_passphrase(reg, tmp_path, capsys):
    r, _ = reg
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    wrong.chmod(0o600)
    assert (
        provision(r, "add-terminal", "kiosk-001", "--out", str(tmp_path / "x"), passphrase=wrong)
        == 4
    )
    assert "wrong passphrase" in _err(capsys)
    assert _terminal_rows(r) == [] and not (tmp_path / "x").exists()


def test_missing_passphrase(reg, tmp_path, capsys):
    r, _ = reg
    assert provision(r, "revoke", "kiosk-001") == 4  # unknown terminal is reported first
    assert "no terminal 'kiosk-001'" in _err(capsys)
    assert provision(r, "add-terminal", "kiosk-001", "--out", str(tmp_path / "x")) == 4
    assert "--passphrase-file" in _err(capsys)


def test_root_and_issuing_keys_are_encrypted_and_private(reg):
    r, _ = reg
    for name in ("ca/root.key", "ca/issuing.key", "region/regional-kem.key", "region/broker.key"):
        p = r / name
        assert p.stat().st_mode & 0o777 == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in p.read_bytes()
    assert (r / "registry.sqlite").stat().st_mode & 0o777 == 0o600


def test_no_registry_says_init(tmp_path, capsys):
    assert provision(tmp_path / "nothing", "list") == 4
    assert "init --region" in _err(capsys)


def test_init_twice_is_refused(reg, capsys):
    r, pw = reg
    assert provision(r, "init", "--region", "central", passphrase=pw) == 4
    assert "already holds a registry" in _err(capsys)


def test_bundle_target_not_empty_leaves_nothing(reg, tmp_path, capsys):
    r, pw = reg
    target = tmp_path / "busy"
    target.mkdir()
    (target / "other").write_text("keep me")
    assert provision(r, "add-terminal", "kiosk-001", "--out", str(target), passphrase=pw) == 4
    assert "not empty" in _err(capsys)
    assert [p.name for p in target.iterdir()] == ["other"]
    assert _terminal_rows(r) == []  # the registry transaction was rolled back
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".busy")]  # no staging left


def test_sd_card_not_mounted(reg, tmp_path, capsys):
    r, pw = reg
    missing = tmp_path / "media" / "boot"
    assert provision(r, "add-terminal", "kiosk-001", "--sd-card", str(missing), passphrase=pw) == 4
    assert "mount the SD card" in _err(capsys)
    assert _terminal_rows(r) == []


def test_sd_card_not_writable(reg, tmp_path, capsys, monkeypatch):
    r, pw = reg
    boot = tmp_path / "boot"
    boot.mkdir()
    # as root every mode bit is writable, so stand in for a read-only mount here
    real = os.access
    monkeypatch.setattr(
        atomic.os, "access", lambda p, m: False if str(p) == str(boot) else real(p, m)
    )
    assert provision(r, "add-terminal", "kiosk-001", "--sd-card", str(boot), passphrase=pw) == 4
    err = _err(capsys)
    assert "not writable" in err and "read-write" in err
    assert _terminal_rows(r) == []


def test_sd_card_bundle_and_no_second_one(reg, tmp_path, capsys):
    r, pw = reg
    boot = tmp_path / "boot"
    boot.mkdir()
    assert provision(r, "add-terminal", "kiosk-001", "--sd-card", str(boot), passphrase=pw) == 0
    assert (boot / "fieldterm-bundle" / "terminal.toml").exists()
    assert provision(r, "add-terminal", "kiosk-002", "--sd-card", str(boot), passphrase=pw) == 4
    assert "already holds a bundle" in _err(capsys)
    assert _terminal_rows(r) == ["kiosk-001"]


def test_expired_issuing_ca(reg, tmp_path):
    r, pw = reg
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1900)
    with RegionAuthority.open(r, pw.read_text().strip().encode(), clock=lambda: later) as region:
        with pytest.raises(SetupError, match=r"issuing CA expired on .* new region CA"):
            region.add_terminal("kiosk-001", BundleTarget(out=tmp_path / "x"), TerminalOptions())
    assert _terminal_rows(r) == []


def test_passphrase_file_unreadable(reg, tmp_path, capsys):
    r, _ = reg
    assert provision(r, "list", passphrase=tmp_path / "nope") == 4
    assert "cannot read --passphrase-file" in _err(capsys)


def test_failure_mid_bundle_leaves_nothing(reg, tmp_path, monkeypatch):
    """A crash after some bundle files are on disk: no bundle, no staging dir, no row."""
    r, pw = reg

    def boom(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle.Bundle, "manifest", boom)
    with pytest.raises(OSError):
        provision(r, "add-terminal", "kiosk-001", "--out", str(tmp_path / "b"), passphrase=pw)
    assert not (tmp_path / "b").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b")] == []
    assert _terminal_rows(r) == []


def test_real_entry_point_and_env_registry(tmp_path):
    """The installed ``fieldterm`` command, registry from FIELDTERM_REGISTRY, options after
    the action."""
    exe = str(Path(sys.executable).with_name("fieldterm"))
    env = dict(os.environ, FIELDTERM_REGISTRY=str(tmp_path / "reg"))
    env.pop("FIELDTERM_PASSPHRASE_FILE", None)
    run = lambda *a: subprocess.run(  # noqa: E731
        [exe, "provision", *a], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run("init", "--region", "north", "--no-passphrase").returncode == 0
    r = run("add-terminal", "kiosk-9", "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    r = run("list", "--json")
    assert r.returncode == 0 and '"kiosk-9"' in r.stdout
    r = run("show", "kiosk-10")
    assert r.returncode == 4 and "no terminal 'kiosk-10'" in r.stderr


def _need_root_and_mosquitto_user() -> None:
    import pwd  # noqa: PLC0415

    from tests.support.require import need  # noqa: PLC0415

    if os.geteuid() != 0:
        need("root", "Mosquitto drops to its own user only when started as root")
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        need("root", "no user 'mosquitto' (install the mosquitto package: make system-deps)")


def test_broker_config_refuses_a_home_mosquitto_cannot_traverse_and_the_fix_works(
    reg, tmp_path, capsys
):
    """README's flow as root from /root (mode 0700): refused with the fix, nothing written;
    after the fix it names, a real Mosquitto starts from the directory."""
    from host_tools.mosquitto import Mosquitto, free_port  # noqa: PLC0415

    _need_root_and_mosquitto_user()
    r, pw = reg
    home = tmp_path / "root-home"
    home.mkdir()
    home.chmod(0o700)
    out = home / "broker"
    port = free_port()
    argv = ("broker-config", "--out", str(out), "--port", str(port))
    assert provision(r, *argv, passphrase=pw) == 4
    err = _err(capsys)
    assert f"user mosquitto cannot traverse {home} (mode 0700)" in err
    assert f"chmod o+x {home}" in err
    if Path("/srv").stat().st_mode & 0o001 and not Path("/srv/fieldterm").exists():
        assert "--out /srv/fieldterm/broker" in err
    assert not out.exists()

    home.chmod(0o701)  # the fix the message names
    assert provision(r, *argv, passphrase=pw) == 0
    conf = (out / "mosquitto.conf").read_text()
    assert "user mosquitto" in conf
    broker = Mosquitto(out, port=port, conf_text=conf)
    broker.start()  # listens, or raises with Mosquitto's own log
    broker.stop()

    # and the refusal is about a real failure: without the x bit the same broker cannot start
    home.chmod(0o700)
    with pytest.raises(RuntimeError, match="exited"):
        Mosquitto(out, port=port, conf_text=conf).start()


def test_broker_config_takes_back_parents_a_strict_umask_made_unreachable(reg, tmp_path, capsys):
    _need_root_and_mosquitto_user()
    r, pw = reg
    out = tmp_path / "new" / "deeper" / "broker"
    old = os.umask(0o077)
    try:
        code = provision(r, "broker-config", "--out", str(out), passphrase=pw)
    finally:
        os.umask(old)
    assert code == 4
    err = _err(capsys)
    new = tmp_path / "new"
    assert f"cannot traverse {new} (mode 0700)" in err
    assert f"chmod o+x {new} {new / 'deeper'}" in err  # every directory in the way
    assert not new.exists()
