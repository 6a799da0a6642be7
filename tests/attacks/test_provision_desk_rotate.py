"""Attack (or accident): ``alert-desk --rotate`` with a wrong passphrase.

It used to delete the desk's keys from the registry before it needed the passphrase; the
next ``broker-config`` then silently made new ones, and the desk in service could open no
alert. Now it checks first, stages the new keys and swaps them in only after commit.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.provision.helpers import Peer

from .broker_rig import attack_region, expected, honest_queries

__all__ = ["attack_region"]

DESK_FILES = ("alert-desk.key", "alert-desk.pub", "alert-desk-tls.crt", "alert-desk-tls.key")


def _digests(region) -> dict[str, str]:
    files = [region.registry / "region" / n for n in DESK_FILES]
    files += [region.registry / "ca" / "crl.pem", region.broker_dir / "alert-desk.pub"]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _desk_certs(region) -> list[tuple[str, str | None]]:
    with sqlite3.connect(region.registry / "registry.sqlite") as db:
        return db.execute(
            "SELECT serial, revoked_at FROM certs WHERE subject='alert-desk' ORDER BY rowid"
        ).fetchall()


def _desk_peer(region, d: Path) -> Peer:
    return Peer(region.port, d / "ca.crt", d / "desk.crt", d / "desk.key", "alert-desk")


def test_rotate_with_a_wrong_passphrase_keeps_the_desk_keys(attack_region, capsys):
    region = attack_region
    before, certs = _digests(region), _desk_certs(region)
    wrong = region.dir / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    wrong.chmod(0o600)
    new_dir = region.dir / "desk-new"
    argv = ["provision", "--registry", str(region.registry), "--passphrase-file", str(wrong)]
    from firmware.cli import main  # noqa: PLC0415 -- the real entry point, in-process

    rc = main([*argv, "alert-desk", "--rotate", "--out", str(new_dir)])
    assert rc == 4
    assert "passphrase" in capsys.readouterr().err
    assert _digests(region) == before and _desk_certs(region) == certs
    assert not new_dir.exists() or not any(new_dir.iterdir())
    # and the next broker-config makes no new key behind the operator's back
    region.broker_config()
    assert _digests(region) == before
    # the desk in service still connects and reads its topic, kiosks are still answered
    desk = _desk_peer(region, region.desk_dir).connect()
    try:
        assert not desk.subscribe("ft/v1/central/alert")[0].is_failure
    finally:
        desk.close()
    assert honest_queries(region, "kiosk-001", 1, 1) == expected(1, 1)
    # with the right passphrase the rotation goes through: new keys, old certificate revoked
    assert region.cli("alert-desk", "--rotate", "--out", str(new_dir)) == 0
    after = _digests(region)
    for name in DESK_FILES:
        key = str(region.registry / "region" / name)
        assert after[key] != before[key], name
    assert [r for _, r in _desk_certs(region)][: len(certs)] != [None] * len(certs)
    assert (new_dir / "alert-desk.key").exists()
