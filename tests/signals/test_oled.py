"""The luma.oled backend against recording fakes of luma and PIL (no I2C here)."""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager

import pytest

from firmware.errors import SetupError
from firmware.signals import open_display, render_screen
from firmware.signals.display import _wrap


class FakeFont:
    """6 px per character, like a small fixed-width font."""

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size

    def getlength(self, s: str) -> float:
        return 6.0 * len(s)


class FakeDevice:
    width = 128

    def __init__(self, serial: dict, log: list) -> None:
        self.serial, self.log = serial, log

    def clear(self) -> None:
        self.log.append(("clear",))

    def cleanup(self) -> None:
        self.log.append(("cleanup",))


@pytest.fixture
def fake_luma(monkeypatch):
    log: list = []
    fonts: list[FakeFont] = []

    def truetype(path, size):
        if "missing" in path:
            raise OSError(f"cannot open resource {path}")
        fonts.append(FakeFont(path, size))
        return fonts[-1]

    class Draw:
        def text(self, xy, s, font, fill):
            log.append(("text", xy, s, font.size))

    @contextmanager
    def canvas(device):
        log.append(("frame",))
        yield Draw()

    devices = types.ModuleType("luma.oled.device")
    devices.ssd1306 = lambda serial: FakeDevice(serial, log)  # type: ignore[attr-defined]
    devices.sh1106 = lambda serial: FakeDevice(serial, log)  # type: ignore[attr-defined]
    serial = types.ModuleType("luma.core.interface.serial")
    serial.i2c = lambda port, address: {"port": port, "address": address}  # type: ignore[attr-defined]
    render = types.ModuleType("luma.core.render")
    render.canvas = canvas  # type: ignore[attr-defined]
    pil_font = types.ModuleType("PIL.ImageFont")
    pil_font.truetype = truetype  # type: ignore[attr-defined]
    pil = types.ModuleType("PIL")
    pil.ImageFont = pil_font  # type: ignore[attr-defined]
    mods = {
        "luma": types.ModuleType("luma"),
        "luma.core": types.ModuleType("luma.core"),
        "luma.core.interface": types.ModuleType("luma.core.interface"),
        "luma.core.interface.serial": serial,
        "luma.core.render": render,
        "luma.oled": types.ModuleType("luma.oled"),
        "luma.oled.device": devices,
        "PIL": pil,
        "PIL.ImageFont": pil_font,
    }
    mods["luma.oled"].device = devices  # type: ignore[attr-defined]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return log, fonts


def test_oled_draws_russian_possible_match_wrapped_to_the_panel(fake_luma):
    log, fonts = fake_luma
    disp = open_display("sh1106", bus=3, address=0x3D, font="/opt/fonts/Cyr.ttf")
    assert disp is not None
    assert {f.path for f in fonts} == {"/opt/fonts/Cyr.ttf"}
    disp.show(render_screen("possible_match", "ru", seq=4))
    texts = [e for e in log if e[0] == "text"]
    assert texts[0][2] == render_screen("possible_match", "ru").title
    assert texts[0][3] == 16
    rows = [t[2] for t in texts[1:]]
    assert 1 <= len(rows) <= 4
    assert all(6 * len(r) <= 128 for r in rows)
    assert any(ch in "".join(rows) for ch in "абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
    disp.close()
    disp.close()
    assert ("clear",) in log and ("cleanup",) in log


def test_oled_wraps_long_words_without_losing_text(fake_luma):
    font = FakeFont("x", 10)
    rows = _wrap("Паспорт " + "Х" * 30 + " конец", font, 60)
    assert all(font.getlength(r) <= 60 for r in rows)
    assert "".join(rows).replace(" ", "") == ("Паспорт" + "Х" * 30 + "конец")


def test_oled_missing_font_is_a_setup_error(fake_luma):
    with pytest.raises(SetupError, match="i2c"):
        open_display("ssd1306", font="/missing/font.ttf")


def test_oled_without_luma_is_a_setup_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "luma.core.interface.serial", None)
    with pytest.raises(SetupError, match=r"fieldterm\[pi\]"):
        open_display("ssd1306")


def test_oled_wraps_a_long_offline_title_to_two_rows_and_keeps_it_whole(fake_luma):
    log, _fonts = fake_luma
    disp = open_display("ssd1306")
    screen = render_screen("possible_match_offline", "en", seq=2, answer_age_h=3.0)
    disp.show(screen)
    texts = [e for e in log if e[0] == "text"]
    titles = [t for t in texts if t[3] == 16]
    assert [t[2] for t in titles] == ["POSSIBLE MATCH", "(offline list)"]
    assert [t[1] for t in titles] == [(0, 0), (0, 17)]
    body = [t for t in texts if t[3] != 16]
    assert len(body) == 2 and all(t[1][1] + 11 <= 64 for t in body)
    assert (
        body[0][1] == (0, 37) and body[0][2] == "Hold document, refer"
    )  # 21 characters of 6 px at most
