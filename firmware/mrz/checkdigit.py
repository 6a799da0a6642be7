"""ICAO 9303-3 §4.9 check digits: modulus 10 with the repeating weights 7, 3, 1.

Digits count as their value, ``A``-``Z`` as 10-35 and the filler ``<`` as 0. The tables are
built once at import so that a check costs three C-level ``bytes.translate`` calls and three
``sum`` calls, with no per-character Python loop.
"""

from __future__ import annotations

from firmware.errors import MrzError

FILLER = "<"
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALPHABET = DIGITS + LETTERS + FILLER
"""Every character allowed in an MRZ (OCR-B subset of Doc 9303-3 §4.4)."""

VALUES: dict[str, int] = {c: i for i, c in enumerate(DIGITS + LETTERS)}
VALUES[FILLER] = 0

WEIGHTS = (7, 3, 1)


def _weighted_table(weight: int) -> bytes:
    table = bytearray(256)
    for char, value in VALUES.items():
        table[ord(char)] = (value * weight) % 10
    return bytes(table)


_T7, _T3, _T1 = (_weighted_table(w) for w in WEIGHTS)


class _PositionTable(dict[str, int]):
    """Character -> weighted value at one position; characters outside the set count 0."""

    def __missing__(self, key: str) -> int:
        return 0


# One table per position (weights repeat 7, 3, 1), long enough for any MRZ check input.
_POSITION_TABLES = tuple(
    _PositionTable({c: v * WEIGHTS[i % 3] for c, v in VALUES.items()}) for i in range(96)
)
_GET = _PositionTable.__getitem__


def check_value(text: str) -> int:
    """The check digit of an MRZ string as an int (characters outside the set count 0)."""
    return sum(map(_GET, _POSITION_TABLES, text)) % 10


def check_sum(data: bytes) -> int:
    """The check digit of ``data`` (ASCII bytes of MRZ characters) as an int 0-9.

    Bytes outside the MRZ alphabet count as 0; callers validate the alphabet first.
    """
    return (
        sum(data[0::3].translate(_T7))
        + sum(data[1::3].translate(_T3))
        + sum(data[2::3].translate(_T1))
    ) % 10


def compute_check_digit(text: str) -> int:
    """The ICAO 9303 check digit of ``text`` (``0-9``, ``A-Z`` and ``<``).

    Raises :class:`MrzError` (kind ``charset``) if ``text`` holds any other character; the
    message names the position only, never the text.
    """
    if not isinstance(text, str):
        raise MrzError("structure", "check_digit_input", None, "expected a string")
    for index, char in enumerate(text):
        if char not in VALUES:
            raise MrzError("charset", "check_digit_input", (0, index), "not an MRZ character")
    return check_value(text)


def weight_at(index: int) -> int:
    """The weight (7, 3 or 1) of the character at ``index`` within a checked string."""
    return WEIGHTS[index % 3]
