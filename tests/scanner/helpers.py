"""Shared test data for the scanner tests: documents and encoders of every framing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from firmware.mrz import make_mrva, make_mrvb, make_td1, make_td2, make_td3
from firmware.scanner import framing_json, framing_lines, framing_rte, framing_stx

DOCS: dict[str, list[str]] = {
    "TD1": make_td1(),
    "TD2": make_td2(),
    "TD3": make_td3(),
    "MRVA": make_mrva(),
    "MRVB": make_mrvb(),
}

Encoder = Callable[[Sequence[str]], bytes]

# Every wire style the framers accept, named "<framing>-<style>".
ENCODERS: dict[str, Encoder] = {
    "lines-crlf": lambda ls: framing_lines.encode(ls, b"\r\n"),
    "lines-cr": lambda ls: framing_lines.encode(ls, b"\r"),
    "lines-lf": lambda ls: framing_lines.encode(ls, b"\n"),
    "stx-plain": framing_stx.encode,
    "stx-accessis": lambda ls: framing_stx.encode(ls, b"\x1c", b"\x1d"),
    "stx-vendor": lambda ls: framing_stx.encode(ls, b"\x10", b"\x11"),
    "rte": framing_rte.encode,
    "json": framing_json.encode,
}


def framing_of(style: str) -> str:
    return style.split("-", maxsplit=1)[0]


def junk_for(style: str) -> bytes:
    """Noise between frames that a reader of this style may really see."""
    if framing_of(style) == "lines":
        return b"READY\r\n\x00\xff\x7fnoise\r\n"
    return b"\x00\xffnoise\r\n\x7f"
