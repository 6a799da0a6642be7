"""Signal patterns asserted as whole sequences with a fake clock (no sleeping)."""

from __future__ import annotations

import io
import sys
import types

import pytest

from firmware.errors import ConfigError, OperationError, SetupError
from firmware.signals import PATTERNS, open_button, open_display, open_panel
from firmware.signals.console import ConsolePanel
from firmware.signals.display import NoDisplay
from firmware.signals.mock import MockPanel


def run(panel: MockPanel, state: str, until: float, step: float = 0.01, start: float = 0.0):
    panel.show(state, start)
    t = start
    while t < until:
        t = round(t + step, 6)
        panel.update(t)


def test_clear_is_green_steady_with_one_short_beep():
    p = MockPanel()
    run(p, "clear", 5.0)
    assert p.timeline("green") == [(0.0, True)]
    assert p.timeline("buzzer") == [(0.0, True), (0.15, False)]
    assert p.timeline("red") == [] and p.timeline("amber") == []


def test_possible_match_red_fast_blink_and_repeating_long_beeps_still_going_after_60s():
    p = MockPanel()
    run(p, "possible_match", 61.0)
    red = p.timeline("red")
    assert red[:5] == [(0.0, True), (0.13, False), (0.25, True), (0.38, False), (0.5, True)]
    assert any(t > 60.0 and on for t, on in red)  # latched: no return to idle on its own
    beeps = [t for t, on in p.timeline("buzzer") if on]
    assert beeps[:4] == [0.0, 0.9, 1.8, 3.0]  # three long beeps, again every 3 s
    assert p.timeline("green") == []


def test_unknown_amber_slow_blink_three_short_beeps():
    p = MockPanel()
    run(p, "unknown", 3.0)
    assert p.timeline("amber") == [
        (0.0, True),
        (0.5, False),
        (1.0, True),
        (1.5, False),
        (2.0, True),
        (2.5, False),
        (3.0, True),
    ]
    assert [t for t, on in p.timeline("buzzer") if on] == [0.0, 0.24, 0.48]


def test_rescan_amber_double_flash_two_beeps():
    p = MockPanel()
    run(p, "rescan", 1.3)
    assert p.timeline("amber") == [
        (0.0, True),
        (0.12, False),
        (0.24, True),
        (0.36, False),
        (1.2, True),
    ]
    assert [t for t, on in p.timeline("buzzer") if on] == [0.0, 0.24]


def test_verdicts_differ_without_colour():
    """Colour-blind safe: drop the colour names and the four answers still differ."""
    shapes = {}
    for state in ("clear", "possible_match", "unknown", "rescan"):
        waves = PATTERNS[state].waves
        shapes[state] = tuple(sorted(repr((w.on, w.gap, w.pulses, w.period)) for _, w in waves))
    assert len(set(shapes.values())) == 4


def test_transition_turns_previous_channels_off_and_close_turns_all_off():
    p = MockPanel()
    p.show("possible_match", 0.0)
    p.show("clear", 0.05)
    assert p.levels == {"green": True, "amber": False, "red": False, "buzzer": True}
    p.close()
    assert p.levels == dict.fromkeys(("green", "amber", "red", "buzzer"), False)
    assert p.closed
    p.close()  # idempotent
    p.show("clear", 1.0)  # ignored after close
    assert p.levels["green"] is False


def test_buzzer_can_be_disabled():
    p = MockPanel(buzzer=False)
    run(p, "possible_match", 4.0)
    assert p.timeline("buzzer") == []
    assert p.timeline("red")


def test_unknown_state_is_an_error():
    with pytest.raises(OperationError, match="no pattern"):
        MockPanel().show("bogus", 0.0)


def test_console_panel_names_pattern_in_words():
    out = io.StringIO()
    p = ConsolePanel(out)
    p.show("possible_match", 0.0)
    p.update(0.2)
    p.show("possible_match", 0.3)  # same state: no second line
    assert out.getvalue().count("\n") == 1
    assert "red fast blink" in out.getvalue() and "3 long beeps every 3 s" in out.getvalue()


class FakeGPIO(types.ModuleType):
    BCM, OUT, IN, HIGH, LOW, PUD_UP = "BCM", "OUT", "IN", 1, 0, "PUD_UP"

    def __init__(self):
        super().__init__("RPi.GPIO")
        self.calls: list[tuple] = []
        self.levels: dict[int, int] = {}

    def setwarnings(self, flag):
        self.calls.append(("setwarnings", flag))

    def setmode(self, mode):
        self.calls.append(("setmode", mode))

    def setup(self, pin, mode, initial=None, pull_up_down=None):
        self.calls.append(("setup", pin, mode, initial, pull_up_down))

    def output(self, pin, level):
        self.calls.append(("output", pin, level))

    def input(self, pin):
        return self.levels.get(pin, 1)

    def cleanup(self, pins=None):
        self.calls.append(("cleanup", pins))


@pytest.fixture
def fake_gpio(monkeypatch):
    gpio = FakeGPIO()
    rpi = types.ModuleType("RPi")
    rpi.GPIO = gpio  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    return gpio


def test_gpio_backend_drives_default_pins_and_cleans_up(fake_gpio):
    panel = open_panel("gpio", {}, None)
    panel.show("clear", 0.0)
    panel.update(0.2)
    panel.close()
    assert ("setmode", "BCM") in fake_gpio.calls
    outs = [c for c in fake_gpio.calls if c[0] == "output"]
    assert outs == [("output", 17, 1), ("output", 18, 1), ("output", 18, 0), ("output", 17, 0)]
    assert fake_gpio.calls[-1] == ("cleanup", [17, 27, 22, 18])


def test_gpio_button_debounced_press_edge(fake_gpio):
    now = [0.0]
    button = open_button("gpio", {"button": 5}, lambda: now[0])
    assert ("setup", 5, "IN", None, "PUD_UP") in fake_gpio.calls
    assert not button.pressed()
    fake_gpio.levels[5] = 0  # pressed (active low)
    assert not button.pressed()  # not yet stable
    now[0] = 0.01
    assert not button.pressed()
    now[0] = 0.05
    assert button.pressed()  # stable for the debounce time: one press
    now[0] = 0.10
    assert not button.pressed()  # held: no repeat
    fake_gpio.levels[5] = 1
    now[0] = 0.2
    button.pressed()
    now[0] = 0.3
    assert not button.pressed()  # release is not a press


def test_gpio_backend_without_library_is_a_setup_error_not_a_mock(monkeypatch):
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    with pytest.raises(SetupError, match="rpi-lgpio"):
        open_panel("gpio", {}, None)


def test_mock_button_and_display_factories():
    b = open_button("mock")
    assert not b.pressed()
    b.press()
    assert b.pressed() and not b.pressed()
    assert isinstance(open_display("none"), NoDisplay)
    with pytest.raises(ConfigError, match=r"signals\.display") as info:
        open_display("hd44780")
    assert info.value.field == "signals.display"


def test_offline_answers_differ_from_every_online_pattern_without_colour():
    """The two offline answers, colour names dropped, match no other state's pattern, and
    neither shares its light wave or its sound with an online answer."""

    def shape(state):
        return tuple(
            sorted(repr((w.on, w.gap, w.pulses, w.period)) for _, w in PATTERNS[state].waves)
        )

    def part(state, channel_is_buzzer):
        waves = PATTERNS[state].waves
        return [
            (w.on, w.gap, w.pulses, w.period)
            for n, w in waves
            if (n == "buzzer") == channel_is_buzzer
        ]

    online = [s for s in PATTERNS if s not in ("possible_match_offline", "not_listed")]
    for state in ("possible_match_offline", "not_listed"):
        assert all(shape(state) != shape(o) for o in online), state
        for o in ("clear", "possible_match", "unknown", "rescan"):
            assert part(state, False) != part(o, False), (state, o)
            assert part(state, True) != part(o, True), (state, o)
    assert shape("possible_match_offline") != shape("not_listed")


@pytest.mark.parametrize("state", ["possible_match", "possible_match_offline"])
def test_discreet_possible_match_sounds_exactly_like_a_clear(state):
    clear, loud, quiet = MockPanel(), MockPanel(), MockPanel()
    quiet.discreet = True
    run(clear, "clear", 10.0)
    run(loud, state, 10.0)
    run(quiet, state, 10.0)
    assert quiet.timeline("buzzer") == clear.timeline("buzzer") == [(0.0, True), (0.15, False)]
    assert loud.timeline("buzzer") != clear.timeline("buzzer")
    for channel in ("green", "amber", "red"):  # the officer's lights are unchanged
        assert quiet.timeline(channel) == loud.timeline(channel)


def test_discreet_leaves_other_states_alone():
    a, b = MockPanel(), MockPanel()
    b.discreet = True
    for p in (a, b):
        run(p, "unknown", 5.0)
    assert a.timeline("buzzer") == b.timeline("buzzer")
