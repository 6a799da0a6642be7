"""Tolerant-mode normalisation: line breaks, surrounding whitespace, lowercase, blank lines,
and a joined MRZ.

A joined MRZ is one line of 88, 72 or 90 characters: all lines of a TD3 or MRV-A (2 x 44),
TD2 or MRV-B (2 x 36) or TD1 (3 x 30) document sent without line ends, as some keyboard-wedge
readers do. It is split by its length alone; the layout detection after the split decides
the document type exactly as it does for lines that arrived separately.

Each change is reported by name so the caller can tell a person (or an audit record) that
the input was not exactly ICAO-conformant, without ever repeating the input itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firmware.mrz.checkdigit import ALPHABET

LINE_BREAKS, WHITESPACE, LOWERCASE, BLANK_LINES, JOINED_LINE = (
    "line_breaks",
    "whitespace",
    "lowercase",
    "blank_lines",
    "joined_line",
)
_ORDER = (LINE_BREAKS, WHITESPACE, LOWERCASE, BLANK_LINES, JOINED_LINE)
#: length of a joined MRZ -> (lines, characters per line)
JOINED_LENGTHS = {88: (2, 44), 72: (2, 36), 90: (3, 30)}
_CLEAN = frozenset(ALPHABET)
_BREAK = re.compile(r"\r\n|\r|\n")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise(lines: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(lines, flags)``: the cleaned lines and which normalisations were applied."""
    if len(lines) != 1 and all(_CLEAN.issuperset(line) and line for line in lines):
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
    if len(out) == 1 and len(out[0]) in JOINED_LENGTHS:
        count, width = JOINED_LENGTHS[len(out[0])]
        out = [out[0][i * width : (i + 1) * width] for i in range(count)]
        flags.add(JOINED_LINE)
    return tuple(out), tuple(f for f in _ORDER if f in flags)
