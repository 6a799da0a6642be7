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


OFFLINE_KEYS = (
    "title.possible_match_offline",
    "title.not_listed",
    "line.not_listed",
    "line.recheck",
    "line.list",
    "line.list_none",
    "line.list_stale",
    "line.offline_list",
    "line.cleared",
    "notice.cleared",
)


def test_offline_list_messages_exist_in_all_seven_languages():
    cat = catalogue()
    for lang in LANGUAGES:
        missing = [k for k in OFFLINE_KEYS if k not in cat[lang]]
        assert missing == [], lang
        assert len({cat[lang][k] for k in OFFLINE_KEYS}) == len(OFFLINE_KEYS), lang


def test_offline_hit_screen_names_the_list_and_the_recheck():
    s = render_screen("possible_match_offline", "en", seq=3, answer_age_h=2.04, list_version=12)
    assert s.title == "POSSIBLE MATCH (offline list)"
    assert s.lines == (
        "Hold document, refer to supervisor",
        "Offline list, 2.0 h old",
        "Will be re-checked online when the link returns",
        "Scan #3",
        "Press the button to acknowledge",
    )


def test_not_listed_screen_shows_the_age_and_is_not_clear():
    s = render_screen("not_listed", "en", seq=5, answer_age_h=26.6, list_version=12)
    assert s.title == "NOT LISTED (offline list)" and "CLEAR" != s.title
    assert s.lines[:2] == (
        "Not CLEAR: the offline list is 27 h old",
        "Will be re-checked online when the link returns",
    )
    r = render_screen("not_listed", "ru", seq=5, answer_age_h=3.0)
    assert r.title == "НЕТ В СПИСКЕ (офлайн-список)"
    assert r.lines[0] == "Неокончательный ответ: офлайн-список создан 3.0 ч назад"


def test_idle_and_no_link_screens_carry_the_list_version_and_age():
    idle = render_screen("idle", "en", list_version=7, list_age_h=0.3, list_usable=True)
    assert idle.lines[-1] == "Offline list, 0.3 h old"
    off = render_screen("offline", "en", list_version=7, list_age_h=0.3, list_usable=True)
    assert off.lines[0] == "Answers come from the offline list until the link returns"
    stale = render_screen("offline", "en", list_version=7, list_age_h=50.0, list_usable=False)
    assert stale.lines == (
        "Answers will be UNKNOWN until the link returns",
        "Offline list too old (50 h): not used",
    )
    none = render_screen("idle", "ru", list_version=None, list_usable=False)
    assert none.lines[-1] == "Офлайн-списка нет"
    assert render_screen("idle", "en").lines == ("Place the document on the reader",)


def test_cleared_online_on_screen_and_as_a_notice():
    s = render_screen("clear", "en", seq=2, late=True, cleared=True)
    assert "Cleared online: the offline hit was not confirmed" in s.lines
    n = render_screen("idle", "en", notices=[(2, "cleared")])
    assert "Scan #2: cleared online" in n.lines


def test_an_offline_hit_waiting_behind_a_match_is_named_as_one():
    # after a restart an unacknowledged offline hit can wait as a sticky notice
    s = render_screen("possible_match", "en", seq=1, notices=[(2, "possible_match_offline")])
    assert "Scan #2: POSSIBLE MATCH (offline list)" in s.lines


def test_supervisor_on_the_way_only_on_a_possible_match():
    from firmware.signals.display import render_screen  # noqa: PLC0415

    for state in ("possible_match", "possible_match_offline"):
        assert "Supervisor on the way" in render_screen(state, "en", supervisor=True).lines
        assert "Supervisor on the way" not in render_screen(state, "en").lines
    assert "Старший уже идёт" in render_screen("possible_match", "ru", supervisor=True).lines
    assert "Supervisor on the way" not in render_screen("clear", "en", supervisor=True).lines
