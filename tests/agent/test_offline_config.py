"""The agent's [offline] section and how the agent opens its offline list from it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware.agent.agent import Agent
from firmware.agent.config import load_agent_config
from firmware.errors import ConfigError
from tests.agent.offline_lists import LISTED, Region

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "hardware" / "terminal.example.toml"
BUNDLE_FILES = (
    "ca.crt",
    "client.crt",
    "client.key",
    "identity.key",
    "regional-kem.pub",
    "regional-sign.pub",
    "audit.key",
)


def without_offline(text: str) -> str:
    """The example without its [offline] table (a test adds its own)."""
    return re.sub(r"(?ms)^\[offline\]\n.*?(?=^\[|\Z)", "", text)


def bundle(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "terminal.toml"
    cfg.write_text(without_offline(EXAMPLE.read_text()) + extra)
    for name in BUNDLE_FILES:
        (tmp_path / name).write_text("placeholder\n")
    return cfg


@pytest.mark.parametrize("as_documented", [False, True])
def test_defaults_key_next_to_terminal_toml_and_48_hours(tmp_path, as_documented):
    path = bundle(tmp_path)
    if as_documented:  # the example's own [offline] table says the defaults
        path.write_text(EXAMPLE.read_text())
    cfg = load_agent_config(path, environ={})
    assert cfg.offline is not None
    assert cfg.offline.list_key == tmp_path / "offline-list.key"
    assert cfg.offline.max_age == 48 * 3600.0
    assert cfg.offline.sign_public == tmp_path / "regional-sign.pub"
    assert cfg.offline.store_dir(Path("/var/lib/fieldterm")) == Path("/var/lib/fieldterm/offline")


def test_the_section_is_layered_like_every_other(tmp_path):
    path = bundle(tmp_path, '\n[offline]\nlist_key = "keys/list.key"\nmax_age = 7200\n')
    cfg = load_agent_config(path, environ={"FIELDTERM_OFFLINE__MAX_AGE": "3600"})
    assert cfg.offline.list_key == tmp_path / "keys" / "list.key"
    assert cfg.offline.max_age == 3600.0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("\n[offline]\nmax_age = 10\n", "offline.max_age"),
        ('\n[offline]\nmax_age = "long"\n', "offline.max_age"),
        ("\n[offline]\nmax_agee = 3600\n", "offline.max_agee"),
    ],
)
def test_bad_values_name_the_field(tmp_path, extra, field):
    with pytest.raises(ConfigError) as e:
        load_agent_config(bundle(tmp_path, extra), environ={})
    assert e.value.field == field


def test_a_missing_key_file_is_not_a_startup_failure_but_one_warning(tmp_path, caplog):
    cfg = load_agent_config(bundle(tmp_path), environ={})  # no offline-list.key
    with caplog.at_level(logging.WARNING, logger="firmware.agent.agent"):
        assert Agent(cfg)._open_offline() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "offline.list_key" in warnings[0].getMessage()


def test_with_the_key_the_agent_answers_from_state_dir_offline(tmp_path):
    region = Region(name="central")  # the example's region
    path = bundle(tmp_path, "")
    (tmp_path / "offline-list.key").write_text(region.list_key.hex() + "\n")
    (tmp_path / "regional-sign.pub").write_bytes(
        region.sign_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    state = tmp_path / "state"
    cfg = load_agent_config(path, environ={"FIELDTERM_AGENT__STATE_DIR": str(state)})
    region.install(region.store(state / "offline"), 6, created=1_800_000_000.0)
    answerer = Agent(cfg, wall=lambda: 1_800_000_000.0 + 3600)._open_offline()
    try:
        assert answerer is not None and answerer.store.root == state / "offline"
        from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

        ans = answerer.answer(DocumentKey(*LISTED))
        assert (ans.verdict, ans.list_version, ans.list_age_s) == ("LISTED", 6, 3600.0)
    finally:
        answerer.close()
