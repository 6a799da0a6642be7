"""The offline-list key: made by init, handed to the regional and to every bundle, made on
first need for an older registry; the list topics' ACLs on a real broker."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from firmware.offline.config import OfflineTerminalConfig
from firmware.offline.listkey import load_list_key
from firmware.protocol import topics
from host_tools.offline.config import OfflineBuildConfig
from host_tools.regional.config import RegionalConfig

from .helpers import Peer

KEY = "offline-list.key"


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_makes_one_key_shared_by_the_regional_and_every_bundle(region):
    reg_key = region.registry / "region" / KEY
    text = reg_key.read_text().strip()
    assert len(text) == 64 and bytes.fromhex(text) and _mode(reg_key) == 0o600
    # not the index key: the kiosks must never learn that one
    assert text != (region.registry / "region" / "index.key").read_text().strip()
    copies = [region.broker_dir / KEY] + [b / KEY for b in region.bundles.values()]
    assert all(p.read_text().strip() == text and _mode(p) == 0o600 for p in copies)
    assert load_list_key(region.broker_dir / KEY) == bytes.fromhex(text)


def test_regional_toml_offline_section_loads(region):
    doc = tomllib.loads(region.regional_toml.read_text())
    assert doc["offline"] == {
        "list_key": KEY,
        "fingerprint_bits": 8,
        "chunk_size": 65536,
        "publish_interval": 900,
        "refresh_after": 900,
        "rebuild_after": 86400,
        "max_delta_fraction": 0.05,
        "max_delta_changes": 1_000_000,
    }
    off = RegionalConfig.load(region.regional_toml, environ={}).offline_settings
    assert off.list_key == region.broker_dir / KEY and off.publish_interval == 900.0
    assert off.policy.rebuild_after == 86400.0 and off.policy.max_delta_changes == 1_000_000
    assert off.policy.refresh_after == 900.0
    build = OfflineBuildConfig.load(region.regional_toml, environ={})  # the same section
    assert (build.list_key, build.fingerprint_bits, build.chunk_size) == (off.list_key, 8, 65536)


def test_terminal_toml_offline_section_loads(region):
    b = region.bundles["kiosk-001"]
    doc = tomllib.loads((b / "terminal.toml").read_text())
    assert doc["offline"] == {"list_key": KEY, "max_age": 172800}
    cfg = OfflineTerminalConfig.load(b / "terminal.toml", environ={})
    assert cfg.list_key == b / KEY and cfg.max_age == 172800.0


def test_an_older_registry_gets_the_key_on_first_need_said_once(region, capsys):
    reg_key = region.registry / "region" / KEY
    reg_key.unlink()  # a registry made before the offline list
    capsys.readouterr()
    out = region.root / "bundles" / "kiosk-007"
    assert region.cli("add-terminal", "kiosk-007", "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert err.count("had no offline-list key") == 1 and str(reg_key) in err
    made = reg_key.read_text()
    assert (out / KEY).read_text() == made and _mode(reg_key) == 0o600
    # later commands find it and say nothing
    assert region.cli("broker-config", "--out", str(region.broker_dir)) == 0
    assert region.cli("rotate", "kiosk-007", "--out", str(out) + "-rotated") == 0
    assert "offline-list key" not in capsys.readouterr().err
    assert (region.broker_dir / KEY).read_text() == made
    assert (Path(str(out) + "-rotated") / KEY).read_text() == made


def test_broker_config_on_an_older_registry_makes_the_key(region, capsys):
    (region.registry / "region" / KEY).unlink()
    capsys.readouterr()
    assert region.cli("broker-config", "--out", str(region.broker_dir)) == 0
    assert capsys.readouterr().err.count("had no offline-list key") == 1
    made = (region.registry / "region" / KEY).read_text()
    assert (region.broker_dir / KEY).read_text() == made
    assert _mode(region.broker_dir / KEY) == 0o600


def test_kiosk_reads_a_retained_list_message_but_cannot_publish_one(region, broker):
    manifest = topics.list_manifest_topic("central", "full")
    chunk = topics.list_chunk_topic("central", "full", 7, 0)
    regional = region.regional_peer().connect()
    kiosk = Peer.from_bundle(region.port, region.bundles["kiosk-001"]).connect()
    try:
        assert not regional.publish(manifest, b"signed manifest", retain=True).is_failure
        assert not regional.publish(chunk, b"chunk 0", retain=True).is_failure
        # a kiosk may not write the list: not a manifest, not a chunk
        for t in (manifest, chunk):
            rc = kiosk.publish(t, b"forged", retain=True)
            assert rc.is_failure and rc.getName() == "Not authorized"
        # a kiosk that subscribes later gets the regional's retained messages, not its own
        late = Peer.from_bundle(region.port, region.bundles["kiosk-002"], name="late").connect()
        try:
            assert not late.subscribe(topics.list_filter("central"))[0].is_failure
            assert late.wait_messages(manifest, 1) == [b"signed manifest"]
            assert late.wait_messages(chunk, 1) == [b"chunk 0"]
        finally:
            late.close()
    finally:
        regional.close()
        kiosk.close()
