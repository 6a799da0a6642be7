"""The public entry point: :func:`parse` in strict, tolerant or repair mode."""

from __future__ import annotations

from collections.abc import Sequence

from firmware.errors import MrzError
from firmware.mrz.normalise import normalise
from firmware.mrz.parse import parse_lines
from firmware.mrz.repair import repair
from firmware.mrz.result import REPAIR, STRICT, TOLERANT, MrzResult


def parse(lines: Sequence[str], mode: str = STRICT) -> MrzResult:
    """Parse the MRZ lines of one document.

    ``mode``:

    - ``"strict"`` (default): the exact ICAO layout, lines exactly as received;
    - ``"tolerant"``: first normalises line breaks, surrounding whitespace, lowercase and
      blank lines, splits a joined MRZ (a single line of 88, 72 or 90 characters: 2 x 44,
      2 x 36, 3 x 30), and lists what it changed in ``result.normalised``
      (``joined_line`` for the split);
    - ``"repair"``: tolerant, then OCR-confusion substitutions (O/0, I/1, B/8, S/5, Z/2,
      G/6) where the character class decides, or where exactly one smallest set of
      substitutions makes every check digit pass; see :mod:`firmware.mrz.repair`.

    Never raises for bad MRZ content: defects are in ``result.errors``. Raises
    :class:`MrzError` only if ``lines`` is not a sequence of strings or ``mode`` is unknown.
    """
    if type(lines) not in (list, tuple) and (
        isinstance(lines, str | bytes | bytearray) or not isinstance(lines, Sequence)
    ):
        raise MrzError("structure", "input", None, "expected a sequence of strings")
    for item in lines:
        if not isinstance(item, str):
            raise MrzError("structure", "input", None, "expected a sequence of strings")
    if mode == STRICT:
        return parse_lines(lines)
    if mode == TOLERANT:
        clean, flags = normalise(lines)
        return parse_lines(clean, TOLERANT, flags)
    if mode == REPAIR:
        clean, flags = normalise(lines)
        return repair(clean, flags)
    raise MrzError("structure", "mode", None, "mode must be strict, tolerant or repair")
