"""Tolerant-mode normalisation: line breaks, surrounding whitespace, lowercase, blank lines.

Each change is reported by name so the caller can tell a person (or an audit record) that
the input was not exactly ICAO-conformant, without ever repeating the input itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firmware.mrz.checkdigit import ALPHABET

LINE_BREAKS, WHITESPACE, LOWERCASE, BLANK_LINES = (
    "line_breaks",
    "whitespace",
    "lowercase",
    "blank_lines",
)
_ORDER = (LINE_BREAKS, WHITESPACE, LOWERCASE, BLANK_LINES)
_CLEAN = frozenset(ALPHABET)
_BREAK = re.compile(r"\r\n|\r|\n")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise(lines: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(lines, flags)``: the cleaned lines and which normalisations were applied."""
    if all(_CLEAN.issuperset(line) and line for line in lines):
        return tuple(lines), ()
    flags: set[str] = set()
    out: list[str] = []
    for item in lines:
        body = item.rstrip("\r\n")
        if body != item:
            flags.add(LINE_BREAKS)
        parts = _BREAK.split(body)
        if len(parts) > 1:
            flags.add(LINE_BREAKS)
        for part in parts:
            text = part.strip()
            if text != part:
                flags.add(WHITESPACE)
            if not text:
                flags.add(BLANK_LINES)
                continue
            upper = text.translate(_UPPER)
            if upper != text:
                flags.add(LOWERCASE)
            out.append(upper)
    return tuple(out), tuple(f for f in _ORDER if f in flags)
