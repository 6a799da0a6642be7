"""Screens from the catalogue, in English and Russian, and the console rendering."""

from __future__ import annotations

import io
import logging
import tomllib
from importlib import resources

from firmware.signals.catalogue import LANGUAGES, catalogue, needs_review, placeholders, text
from firmware.signals.display import ConsoleDisplay, MockDisplay, render_screen


def test_en_and_ru_complete_and_placeholders_agree_everywhere():
    cat = catalogue()
    assert set(cat["en"]) == set(cat["ru"])
    for lang in LANGUAGES:
        assert lang in cat
        for key, template in cat[lang].items():
            assert key in cat["en"], (lang, key)
            assert placeholders(template) == placeholders(cat["en"][key]), (lang, key)
            assert template.strip()
    assert set(needs_review()) == {"kk", "ky", "uz", "tg", "tk"}


def test_fallback_to_english_with_warning_never_blank(caplog):
    with caplog.at_level(logging.WARNING):
        s = text("line.ack", "kk")
    assert s == "Press the button to acknowledge"
    assert "using English" in caplog.text
    assert text("title.possible_match", "xx") == "POSSIBLE MATCH"


def test_required_wording():
    s = render_screen("possible_match", "en", seq=4)
    assert s.title == "POSSIBLE MATCH"
    assert "Hold document, refer to supervisor" in s.lines
    assert "Press the button to acknowledge" in s.lines
    u = render_screen("unknown", "en")
    assert (u.title, u.lines[0]) == ("UNKNOWN", "Check manually")


def test_russian_screen_with_record_and_notices():
    s = render_screen(
        "possible_match",
        "ru",
        seq=7,
        record={"status": "STOLEN", "reporting_country": "KAZ", "reference": "R-1"},
        notices=((5, "clear"),),
        pending=(6,),
    )
    assert s.title == "ВОЗМОЖНОЕ СОВПАДЕНИЕ"
    assert "Задержите документ, обратитесь к старшему" in s.lines
    assert "STOLEN, сообщила страна KAZ, ссылка R-1" in s.lines
    assert "Скан №5: НЕ ЗНАЧИТСЯ" in s.lines
    assert "Ответы ещё не получены для сканов: #6" in s.lines


def test_rescan_reason_and_late_marker():
    s = render_screen("rescan", "en", seq=2, reason="check digit of document_number")
    assert "Problem: check digit of document_number" in s.lines
    late = render_screen("clear", "en", seq=3, late=True)
    assert "Late answer for scan #3" in late.lines


def test_console_display_boxes_text_and_names_the_pattern():
    out = io.StringIO()
    ConsoleDisplay(out, colour=False).show(render_screen("unknown", "ru", seq=1))
    shown = out.getvalue()
    assert "НЕИЗВЕСТНО" in shown and "Проверьте вручную" in shown
    assert "signal: amber slow blink, 3 short beeps" in shown
    widths = {len(line) for line in shown.splitlines()}
    assert len(widths) == 1  # a clean box


def test_mock_display_records_screens():
    t = [1.0]
    d = MockDisplay(lambda: t[0])
    d.show(render_screen("clear", "en"))
    t[0] = 2.0
    d.show(render_screen("idle", "en"))
    assert [(ts, s.state) for ts, s in d.history] == [(1.0, "clear"), (2.0, "idle")]


def test_messages_file_is_valid_toml():
    tomllib.loads(resources.files("firmware.signals").joinpath("messages.toml").read_text())
