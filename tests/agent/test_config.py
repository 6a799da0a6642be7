"""terminal.toml for the agent: the documented example loads; typos are start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.agent.config import AgentSection, SignalsConfig
from firmware.config import ConfigDoc
from firmware.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "hardware" / "terminal.example.toml"


def doc_from(tmp_path, text):
    p = tmp_path / "terminal.toml"
    p.write_text(text)
    return ConfigDoc.load(p, environ={})


def test_agent_and_signals_sections_of_the_example():
    doc = ConfigDoc.load(EXAMPLE, environ={})
    sig = SignalsConfig.from_section(doc.section("signals"))
    ag = AgentSection.from_section(doc.section("agent"))
    assert sig.pins == {"green": 17, "amber": 27, "red": 22, "buzzer": 18, "button": 23}
    assert (sig.backend, sig.display, sig.i2c_address) == ("gpio", "ssd1306", 0x3C)
    assert ag.state_dir == Path("/var/lib/fieldterm")
    assert ag.audit_key == EXAMPLE.parent / "audit.key"  # relative to the file
    assert ag.outbox_path.name == "outbox.sqlite" and ag.events_file is None
    for sec in ("signals", "agent"):
        doc._sections[sec].check_unknown()


def test_the_whole_example_loads(tmp_path):
    """The example as a bundle would hold it: next to the files it names."""
    from firmware.agent.config import load_agent_config  # noqa: PLC0415

    cfg_path = tmp_path / "terminal.toml"
    cfg_path.write_text(EXAMPLE.read_text())
    for name in (
        "ca.crt",
        "client.crt",
        "client.key",
        "identity.key",
        "regional-kem.pub",
        "regional-sign.pub",
        "audit.key",
    ):
        (tmp_path / name).write_text("placeholder\n")
    cfg = load_agent_config(cfg_path, environ={})
    assert (cfg.terminal_id, cfg.region, cfg.language) == ("kiosk-001", "central", "en")
    assert cfg.scanner.framing == "auto" and cfg.query_timeout == 2.0
    assert cfg.signals.pins["button"] == 23 and cfg.agent.retry_interval == 10.0
    bad = tmp_path / "typo.toml"
    bad.write_text(EXAMPLE.read_text().replace("retry_interval", "retry_intervall"))
    with pytest.raises(ConfigError) as e:
        load_agent_config(bad, environ={})
    assert e.value.field == "agent.retry_intervall"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[agent]\nmrz_mod = 'strict'\n", "agent.mrz_mod"),
        ("[agent]\nmrz_mode = 'lenient'\n", "agent.mrz_mode"),
        ("[agent]\nresult_hold = -1\n", "agent.result_hold"),
    ],
)
def test_agent_section_errors_name_the_key(tmp_path, text, field):
    doc = doc_from(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        sec = doc.section("agent")
        AgentSection.from_section(sec)
        sec.check_unknown()
    assert e.value.field == field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[signals]\nbackend = 'gpoi'\n", "signals.backend"),
        ("[signals.pins]\npurple = 5\n", "signals.pins.purple"),
        ("[signals.pins]\nred = 40\n", "signals.pins.red"),
        ("[signals.pins]\nred = 5\ngreen = 5\n", "signals.pins"),
    ],
)
def test_signals_section_errors_name_the_key(tmp_path, text, field):
    doc = doc_from(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        SignalsConfig.from_section(doc.section("signals"))
    assert e.value.field == field


def test_environment_overrides_file(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text("[agent]\nretry_interval = 10\n")
    doc = ConfigDoc.load(p, environ={"FIELDTERM_AGENT__RETRY_INTERVAL": "2.5"})
    assert AgentSection.from_section(doc.section("agent")).retry_interval == 2.5


def test_environment_for_another_tool_is_not_a_typo_here(tmp_path):
    """FIELDTERM_REGIONAL__* in the environment must not stop the agent (or the desk) from
    starting; an unknown section in the file, or an unknown key of a section this tool
    reads, still is an error."""
    p = tmp_path / "t.toml"
    p.write_text("[agent]\nretry_interval = 10\n")
    env = {"FIELDTERM_REGIONAL__ALERT_INTERVAL": "60"}
    doc = ConfigDoc.load(p, environ=env)
    AgentSection.from_section(doc.section("agent"))
    doc.check_unknown()  # no error: [regional] is only in the environment
    p.write_text("[agent]\nretry_interval = 10\n[agnet]\nx = 1\n")
    doc = ConfigDoc.load(p, environ=env)
    AgentSection.from_section(doc.section("agent"))
    with pytest.raises(ConfigError, match="unknown section"):
        doc.check_unknown()
    p.write_text("[agent]\nretry_interval = 10\n")
    doc = ConfigDoc.load(p, environ={"FIELDTERM_AGENT__RETRY_INTERVALL": "2"})
    AgentSection.from_section(doc.section("agent"))
    with pytest.raises(ConfigError, match="unknown key"):
        doc.check_unknown()
