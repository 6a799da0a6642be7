"""The display: screens built from the catalogue, shown by a backend.

``render_screen(state, lang, **details)`` makes a frozen :class:`Screen`; a display
backend only draws it. Backends: ``console`` (a boxed, coloured rendering that also names
the light pattern in words), ``mock`` (records ``(t, screen)``), and ``ssd1306``/``sh1106``
I2C OLEDs through luma.oled with a TrueType font that covers Cyrillic; ``none`` draws
nothing. :func:`firmware.signals.backends.open_display` picks one by ``signals.display``.
"""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self, TextIO

from firmware.errors import SetupError
from firmware.signals.catalogue import text
from firmware.signals.patterns import PATTERNS

_RESULT_KEYS = {
    "clear": "title.clear",
    "possible_match": "title.possible_match",
    "possible_match_offline": "title.possible_match_offline",
    "unknown": "title.unknown",
    "rescan": "title.rescan",
    "cleared": "notice.cleared",
}
#: Answers from the offline list: the screen names the list's age and the online re-check.
OFFLINE_ANSWERS = ("possible_match_offline", "not_listed")


#: Screens that carry the clock notice (not the verdicts: they stay short).
CLOCK_NOTICE_SCREENS = frozenset({"idle", "offline", "unknown"})


def hours(h: float) -> str:
    """An age in hours as the screen shows it: ``0.4``, ``3.5``, ``27``."""
    return f"{h:.1f}" if h < 10 else f"{h:.0f}"


DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True)
class DisplayOptions:
    """What any display backend may need; each takes its part (``from_config``)."""

    clock: Callable[[], float] = time.monotonic
    bus: int = 1
    address: int = 0x3C
    font: str = DEFAULT_FONT


@dataclass(frozen=True)
class Screen:
    state: str
    title: str
    lines: tuple[str, ...]
    language: str


def render_screen(
    state: str,
    lang: str,
    *,
    seq: int | None = None,
    reason: str | None = None,
    late: bool = False,
    pending: Iterable[int] = (),
    notices: Iterable[tuple[int, str]] = (),
    record: dict[str, Any] | None = None,
    cleared: bool = False,
    answer_age_h: float | None = None,
    list_version: int | None = None,
    list_age_h: float | None = None,
    list_usable: bool | None = None,
    clock_offset_s: float | None = None,
    supervisor: bool = False,
) -> Screen:
    """The screen for ``state`` in ``lang``; details add the scan number, reason, notices.

    Offline list: ``answer_age_h`` is the age of the list that gave an offline answer
    (``possible_match_offline``, ``not_listed``); ``list_*`` describe the installed list
    for the idle and no-link screens (``list_usable`` None: no offline list configured
    at all, nothing shown); ``cleared`` marks a CLEAR that cleared an offline hit.
    ``clock_offset_s`` (the region's time minus the kiosk's, from a signed time hint; None
    when the clock is right) adds the clock notice to the idle, no-link and UNKNOWN
    screens."""
    lines: list[str] = []
    key = state if state in PATTERNS else "fault"
    title = text(f"title.{key}", lang)
    if key == "offline" and list_usable:
        lines.append(text("line.offline_list", lang))
    elif key in {
        "idle",
        "querying",
        "clear",
        "possible_match",
        "unknown",
        "rescan",
        "offline",
        "fault",
        "storage_full",
    }:
        lines.append(text(f"line.{key}", lang))
    if key == "storage_full":
        lines.append(text("line.storage_call", lang))
    if key == "clear" and cleared:
        lines.append(text("line.cleared", lang))
    if key == "possible_match_offline":
        lines.append(text("line.possible_match", lang))
    if key in OFFLINE_ANSWERS:
        age = hours(answer_age_h or 0.0)
        if key == "not_listed":
            lines.append(text("line.not_listed", lang, age=age))
        else:
            lines.append(text("line.list", lang, version=list_version or "?", age=age))
        lines.append(text("line.recheck", lang))
    if seq is not None and key not in {"idle", "offline"}:
        lines.append(text("line.late" if late else "line.scan", lang, seq=seq))
    if key in {"idle", "offline"} and list_usable is not None:
        lines.append(_list_line(lang, list_version, list_age_h, list_usable))
    if clock_offset_s is not None and key in CLOCK_NOTICE_SCREENS:
        lines.append(clock_line(lang, clock_offset_s))
    if supervisor and key in {"possible_match", "possible_match_offline"}:
        lines.append(text("line.supervisor", lang))  # the annunciator's acknowledgement
    if key == "possible_match_offline":
        lines.append(text("line.ack", lang))
    if key == "possible_match":
        if record:
            lines.append(
                text(
                    "line.record",
                    lang,
                    status=record.get("status", "?"),
                    country=record.get("reporting_country", "?"),
                    reference=record.get("reference", "?"),
                )
            )
        lines.append(text("line.ack", lang))
    if reason and key in {"rescan", "unknown", "fault", "storage_full"}:
        lines.append(text("line.reason", lang, reason=reason))
    for nseq, nstate in notices:
        result = text(_RESULT_KEYS.get(nstate, "title.unknown"), lang)
        lines.append(text("line.notice", lang, seq=nseq, result=result))
    pend = tuple(pending)
    if pend:
        lines.append(text("line.pending", lang, scans=", ".join(f"#{p}" for p in pend)))
    return Screen(state=state, title=title, lines=tuple(lines), language=lang)


def clock_line(lang: str, offset_s: float) -> str:
    """The clock notice: how far the kiosk's clock is off, and that the region's is used."""
    key = "line.clock_behind" if offset_s > 0 else "line.clock_ahead"
    return text(key, lang, hours=hours(abs(offset_s) / 3600.0))


def _list_line(lang: str, version: int | None, age_h: float | None, usable: bool) -> str:
    """The idle screen's line about the offline list: version and age, or why not used."""
    if version is None:
        return text("line.list_none", lang)
    age = hours(age_h or 0.0)
    if not usable:
        return text("line.list_stale", lang, age=age)
    return text("line.list", lang, version=version, age=age)


class Display:
    """Draws screens. Backends implement ``show``; ``close`` is idempotent."""

    @classmethod
    def from_config(cls, model: str, options: DisplayOptions) -> Self:
        """The display as ``open_display`` opens it: ``model`` is the ``signals.display``
        name that chose this class; a backend takes what it needs from ``options``."""
        return cls()

    def show(self, screen: Screen) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoDisplay(Display):
    """The ``none`` backend: a kiosk without a display; every screen is dropped."""

    def show(self, screen: Screen) -> None:
        """Nothing to draw on."""


class MockDisplay(Display):
    """Records ``(t, screen)`` for every screen shown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.history: list[tuple[float, Screen]] = []
        self.closed = False

    @classmethod
    def from_config(cls, model: str, options: DisplayOptions) -> Self:
        return cls(options.clock)

    def show(self, screen: Screen) -> None:
        self.history.append((self.clock(), screen))

    @property
    def states(self) -> list[str]:
        return [s.state for _, s in self.history]

    def close(self) -> None:
        self.closed = True


_ANSI = {
    "clear": "\x1b[1;37;42m",
    "possible_match": "\x1b[1;37;41m",
    "possible_match_offline": "\x1b[1;37;41m",
    "not_listed": "\x1b[1;30;43m",
    "unknown": "\x1b[1;30;43m",
    "rescan": "\x1b[1;30;43m",
    "fault": "\x1b[1;37;41m",
    "storage_full": "\x1b[1;37;41m",
}
_RESET = "\x1b[0m"


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


class ConsoleDisplay(Display):
    """A boxed rendering on a terminal: colour where the terminal has it, words always."""

    def __init__(
        self, stream: TextIO | None = None, *, colour: bool | None = None, width: int = 60
    ):
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour
        self.width = width  # inner width of the box

    def show(self, screen: Screen) -> None:
        w = self.width
        pattern = PATTERNS.get(screen.state)
        title = f" {screen.title} "
        if self.colour and screen.state in _ANSI:
            title = _ANSI[screen.state] + title + _RESET
        out = ["+" + "-" * w + "+"]

        def row(shown: str, visible: str) -> str:
            return "| " + shown + " " * max(0, w - 2 - _width(visible)) + " |"

        out.append(row(title, f" {screen.title} "))
        for line in screen.lines:
            out.append(row(line, line))
        if pattern is not None:
            sig = f"signal: {pattern.describe()}"
            out.append(row(sig, sig))
        out.append("+" + "-" * w + "+")
        self.stream.write("\n".join(out) + "\n")
        self.stream.flush()


def _wrap(line: str, font: Any, width: int) -> list[str]:
    """Split ``line`` at spaces into rows no wider than ``width`` pixels (a long word is cut)."""
    rows: list[str] = []
    current = ""
    for word in line.split():
        candidate = f"{current} {word}" if current else word
        if current and font.getlength(candidate) > width:
            rows.append(current)
            candidate = word
        while font.getlength(candidate) > width and len(candidate) > 1:
            cut = len(candidate) - 1
            while cut > 1 and font.getlength(candidate[:cut]) > width:
                cut -= 1
            rows.append(candidate[:cut])
            candidate = candidate[cut:]
        current = candidate
    if current:
        rows.append(current)
    return rows or [""]


class OledDisplay(Display):
    """An SSD1306/SH1106 128x64 OLED on I2C through luma.oled (the ``pi`` extra)."""

    def __init__(
        self,
        model: str = "ssd1306",
        *,
        bus: int = 1,
        address: int = 0x3C,
        font: str = DEFAULT_FONT,
    ) -> None:
        try:
            from luma.core.interface.serial import i2c  # noqa: PLC0415
            from luma.oled import device as devices  # noqa: PLC0415
            from PIL import ImageFont  # noqa: PLC0415
        except ImportError as exc:
            raise SetupError(
                f"display {model!r} needs luma.oled: pip install 'fieldterm[pi]' ({exc})"
            ) from exc
        try:
            self._device = getattr(devices, model)(i2c(port=bus, address=address))
            self._title_font = ImageFont.truetype(font, 16)
            self._font = ImageFont.truetype(font, 10)
        except (OSError, Exception) as exc:
            raise SetupError(
                f"display {model!r} on I2C bus {bus} address {address:#04x} failed: {exc}; "
                "check dtparam=i2c_arm=on, the wiring and i2cdetect"
            ) from exc

    @classmethod
    def from_config(cls, model: str, options: DisplayOptions) -> Self:
        return cls(model, bus=options.bus, address=options.address, font=options.font)

    def show(self, screen: Screen) -> None:
        from luma.core.render import canvas  # noqa: PLC0415

        width = int(getattr(self._device, "width", 128))
        rows = [r for line in screen.lines for r in _wrap(line, self._font, width)]
        # A title too wide for one row ("POSSIBLE MATCH (offline list)") takes two, so its
        # end is never cut off; the body then has two rows instead of four.
        titles = _wrap(screen.title, self._title_font, width)[:2]
        top = 20 + 17 * (len(titles) - 1)
        with canvas(self._device) as draw:
            for i, row in enumerate(titles):
                draw.text((0, 17 * i), row, font=self._title_font, fill="white")
            for i, row in enumerate(rows[: 4 - 2 * (len(titles) - 1)]):  # 64 px in all
                draw.text((0, top + 11 * i), row, font=self._font, fill="white")

    def close(self) -> None:
        try:
            self._device.clear()
            self._device.cleanup()
        except Exception:  # noqa: S110 - closing a display that is already gone
            pass
