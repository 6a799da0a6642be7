"""The backend tables: one config value picks a backend, an unknown name is a ConfigError
naming the key and the known names, and each backend loads only when chosen."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from firmware.agent.config import SignalsConfig
from firmware.backend_table import BackendTable
from firmware.config import ConfigDoc
from firmware.errors import ConfigError, SetupError
from firmware.signals.backends import BUTTONS, DISPLAYS, PANELS, open_button, open_display
from firmware.signals.base import SignalPanel
from firmware.signals.button import Button, ConsoleButton
from firmware.signals.display import Display, MockDisplay, NoDisplay, render_screen

# Written out here, not read from the tables: the names a terminal.toml may use (docs).
SIGNAL_NAMES = {"gpio", "console", "mock"}
DISPLAY_NAMES = {"ssd1306", "sh1106", "console", "mock", "none"}


def test_tables_hold_the_documented_names():
    assert set(PANELS.names) == set(BUTTONS.names) == SIGNAL_NAMES
    assert set(DISPLAYS.names) == DISPLAY_NAMES
    assert PANELS.setting == BUTTONS.setting == "signals.backend"
    assert DISPLAYS.setting == "signals.display"


@pytest.mark.parametrize("name", sorted(SIGNAL_NAMES))
def test_every_signals_backend_is_a_panel_and_a_button(name):
    assert issubclass(PANELS.load(name), SignalPanel)
    assert issubclass(BUTTONS.load(name), Button)


@pytest.mark.parametrize("name", sorted(DISPLAY_NAMES))
def test_every_display_backend_is_a_display(name):
    assert issubclass(DISPLAYS.load(name), Display)


@pytest.mark.parametrize(
    ("table", "key"),
    [(PANELS, "signals.backend"), (BUTTONS, "signals.backend"), (DISPLAYS, "signals.display")],
)
def test_unknown_name_names_the_key_and_the_known_names(table, key):
    with pytest.raises(ConfigError) as info:
        table.load("hd44780")
    assert info.value.field == key
    assert str(info.value) == f"{key}: unknown backend 'hd44780'; known: {', '.join(table.names)}"


def _signals_section(tmp_path, text):
    path = tmp_path / "terminal.toml"
    path.write_text(text)
    return ConfigDoc.load(path, environ={}).section("signals")


def test_agent_config_accepts_exactly_the_table_names(tmp_path):
    for name in SIGNAL_NAMES:
        for display in DISPLAY_NAMES:
            sec = _signals_section(tmp_path, f"[signals]\nbackend='{name}'\ndisplay='{display}'\n")
            cfg = SignalsConfig.from_section(sec)
            assert (cfg.backend, cfg.display) == (name, display)
    sec = _signals_section(tmp_path, "[signals]\nbackend = 'gpoi'\n")
    with pytest.raises(ConfigError) as info:
        SignalsConfig.from_section(sec)
    assert info.value.field == "signals.backend"


def test_each_display_takes_what_it_needs_from_the_same_arguments():
    screen = render_screen("clear", "en", seq=3)
    mock = open_display("mock", clock=lambda: 41.5, bus=7, address=0x3D)
    assert isinstance(mock, MockDisplay)
    mock.show(screen)
    assert mock.history == [(41.5, screen)]
    blank = open_display("none", clock=lambda: 0.0, bus=7, address=0x3D)
    assert isinstance(blank, NoDisplay)
    blank.show(screen)  # draws nothing, and does not fail
    blank.close()


def test_console_button_counts_one_press_per_line_read():
    button = open_button("console")  # standard input is not a terminal under pytest
    assert isinstance(button, ConsoleButton) and not button.pressed()
    button.read_keys(io.StringIO("\n\n")).join(10)
    assert [button.pressed() for _ in range(3)] == [True, True, False]


def test_choosing_the_tables_loads_no_backend_module():
    """Opening the config's tables imports neither a backend nor a driver library."""
    code = (
        "import sys\n"
        "import firmware.agent.config, firmware.signals.backends\n"
        "print(sorted(m for m in sys.modules if m.startswith(('RPi', 'luma', 'PIL', "
        "'firmware.signals.gpio', 'firmware.signals.display', 'firmware.signals.mock'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_a_table_entry_must_name_module_and_attribute():
    with pytest.raises(SetupError, match=r"'firmware\.signals\.mock' is not 'module:attribute'"):
        BackendTable("signals.backend", {"mock": "firmware.signals.mock"})
    table: BackendTable[object] = BackendTable("x.y", {"a": "firmware.signals.mock:MockPanel"})
    with pytest.raises(ConfigError, match=r"^--flag: unknown backend 'b'; known: a$"):
        table.load("b", setting="--flag")
