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


# --- layering: defaults < file < drop-ins < environment < flags ------------------------------


def _etc(tmp_path: Path) -> Path:
    """A fake /etc/fieldterm holding the example terminal.toml and the files it names."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "terminal.toml").write_text(EXAMPLE.read_text())
    for name in (
        "ca.crt",
        "client.crt",
        "client.key",
        "identity.key",
        "regional-kem.pub",
        "regional-sign.pub",
        "audit.key",
    ):
        (etc / name).write_text("placeholder\n")
    return etc


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ((), 10.0),  # the example file's own value
        (("drop-in",), 7.0),
        (("drop-in", "env"), 5.0),
        (("drop-in", "env", "flag"), 3.0),
        (("env",), 5.0),
        (("flag",), 3.0),
        (("drop-in", "flag"), 3.0),
    ],
)
def test_layers_win_in_order(tmp_path, layers, expected):
    from firmware.agent.config import load_agent_config  # noqa: PLC0415

    etc = _etc(tmp_path)
    env = {"FIELDTERM_ETC": str(etc)}
    if "drop-in" in layers:
        (etc / "terminal.d").mkdir()
        (etc / "terminal.d" / "50-site.toml").write_text("[agent]\nretry_interval = 7\n")
    if "env" in layers:
        env["FIELDTERM_AGENT__RETRY_INTERVAL"] = "5"
    flags = {"agent": {"retry_interval": 3}} if "flag" in layers else None
    cfg = load_agent_config(None, environ=env, overrides=flags)
    assert cfg.agent.retry_interval == expected
    # key by key: a layer that names one key of [agent] leaves the file's other keys alone
    assert cfg.agent.result_hold == 5.0 and cfg.agent.mrz_mode == "repair"
    assert cfg.source == str((etc / "terminal.toml").resolve())


def test_drop_ins_apply_in_name_order_and_errors_name_the_drop_in(tmp_path):
    etc = _etc(tmp_path)
    d = etc / "terminal.d"
    d.mkdir()
    (d / "20-later.toml").write_text("[agent]\nretry_interval = 2\n")
    (d / "10-first.toml").write_text("[agent]\nretry_interval = 9\nrescan_hold = 1.5\n")
    (d / "README").write_text("not toml, not read\n")
    doc = ConfigDoc.load(None, name="terminal", environ={"FIELDTERM_ETC": str(etc)})
    assert [Path(f).name for f in doc.files] == ["terminal.toml", "10-first.toml", "20-later.toml"]
    ag = AgentSection.from_section(doc.section("agent"))
    assert (ag.retry_interval, ag.rescan_hold) == (2.0, 1.5)
    # a relative path in a drop-in means what it means in the main file
    (d / "30-key.toml").write_text("[agent]\naudit_key = 'other.key'\nresult_hold = 0\n")
    doc = ConfigDoc.load(None, name="terminal", environ={"FIELDTERM_ETC": str(etc)})
    sec = doc.section("agent")
    with pytest.raises(ConfigError) as e:
        AgentSection.from_section(sec)
    assert e.value.field == "agent.result_hold"
    assert e.value.source == str((d / "30-key.toml").resolve())
    assert sec.path("audit_key") == etc.resolve() / "other.key"


def test_environment_and_flag_values_are_named_in_errors(tmp_path):
    etc = _etc(tmp_path)
    env = {"FIELDTERM_ETC": str(etc), "FIELDTERM_AGENT__RESULT_HOLD": "soon"}
    doc = ConfigDoc.load(None, name="terminal", environ=env)
    with pytest.raises(ConfigError) as e:
        AgentSection.from_section(doc.section("agent"))
    assert e.value.source == "environment FIELDTERM_AGENT__RESULT_HOLD"
    doc = ConfigDoc.load(
        None,
        name="terminal",
        environ={"FIELDTERM_ETC": str(etc)},
        overrides={"agent": {"rescan_hold": -1}},
    )
    with pytest.raises(ConfigError) as e:
        AgentSection.from_section(doc.section("agent"))
    assert (e.value.field, e.value.source) == ("agent.rescan_hold", "command line")


def test_an_explicit_file_gets_its_own_drop_ins_not_the_etc_ones(tmp_path):
    etc = _etc(tmp_path)
    (etc / "terminal.d").mkdir()
    (etc / "terminal.d" / "x.toml").write_text("[agent]\nretry_interval = 7\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "kiosk.toml").write_text("[agent]\nretry_interval = 4\n")
    env = {"FIELDTERM_ETC": str(etc)}
    doc = ConfigDoc.load(bundle / "kiosk.toml", name="terminal", environ=env)
    assert AgentSection.from_section(doc.section("agent")).retry_interval == 4.0
    (bundle / "kiosk.d").mkdir()
    (bundle / "kiosk.d" / "1.toml").write_text("[agent]\nretry_interval = 6\n")
    doc = ConfigDoc.load(bundle / "kiosk.toml", name="terminal", environ=env)
    assert AgentSection.from_section(doc.section("agent")).retry_interval == 6.0


def test_missing_default_file_names_it_and_the_way_out(tmp_path):
    with pytest.raises(ConfigError) as e:
        ConfigDoc.load(None, name="terminal", environ={"FIELDTERM_ETC": str(tmp_path / "none")})
    assert e.value.source == str(tmp_path / "none" / "terminal.toml")
    assert "--config" in str(e.value)


def test_query_without_config_reads_the_etc_file(tmp_path):
    """The command line's default: no --config means $FIELDTERM_ETC/terminal.toml."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "terminal.toml").write_text("[terminal]\nid = 'Bad Id'\nregion = 'central'\n")
    env = dict(os.environ, FIELDTERM_ETC=str(etc))
    r = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "query"],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 4, r.stderr
    assert "terminal.id" in r.stderr and str(etc / "terminal.toml") in r.stderr
