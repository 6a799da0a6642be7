"""The clock notice: a kiosk whose clock the regional's time hint found off says so on the
idle, no-link and UNKNOWN screens, in every language of the catalogue."""

from __future__ import annotations

import pytest

from firmware.signals.catalogue import LANGUAGES, catalogue, placeholders
from firmware.signals.display import CLOCK_NOTICE_SCREENS, clock_line, render_screen

DAY = 86400.0


def test_clock_messages_exist_in_all_seven_languages_with_the_same_placeholders():
    cat = catalogue()
    assert len(LANGUAGES) == 7
    for lang in LANGUAGES:
        for key in ("line.clock_behind", "line.clock_ahead"):
            assert key in cat[lang], (lang, key)
            assert placeholders(cat[lang][key]) == {"hours"}, (lang, key)
    assert cat["ru"]["line.clock_behind"] != cat["ru"]["line.clock_ahead"]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (30 * DAY, "Kiosk clock 720 h behind: using the region's time"),
        (DAY, "Kiosk clock 24 h behind: using the region's time"),
        (-600.0, "Kiosk clock 0.2 h ahead: using the region's time"),
        (-365 * DAY, "Kiosk clock 8760 h ahead: using the region's time"),
    ],
)
def test_clock_line_says_how_far_and_which_way(offset, expected):
    """``offset`` is the region's time minus the kiosk's: positive means behind."""
    assert clock_line("en", offset) == expected


@pytest.mark.parametrize("state", ["idle", "offline", "unknown", "clear", "possible_match"])
def test_notice_on_idle_no_link_and_unknown_screens_only(state):
    lines = render_screen(state, "en", seq=3, clock_offset_s=DAY).lines
    shown = "Kiosk clock 24 h behind: using the region's time" in lines
    assert shown == (state in CLOCK_NOTICE_SCREENS)


def test_no_notice_without_an_offset():
    assert not any("clock" in line.lower() for line in render_screen("idle", "en").lines)


def test_russian_notice():
    lines = render_screen("idle", "ru", clock_offset_s=-600.0).lines
    assert "Часы терминала спешат на 0.2 ч: используется время региона" in lines
