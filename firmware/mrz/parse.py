"""The strict parser: validated lines of one document in, an :class:`MrzResult` out.

Works from the layout tables in :mod:`firmware.mrz.layouts`; never raises for bad content.
Every defect becomes an :class:`MrzError` naming its kind, field and ``(line, column)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firmware.errors import MrzError
from firmware.mrz import layouts
from firmware.mrz.checkdigit import ALPHABET, DIGITS, FILLER, LETTERS, check_value
from firmware.mrz.dates import birth_date_ok, expiry_date_ok
from firmware.mrz.layouts import Layout
from firmware.mrz.result import STRICT, MrzResult

_MRZ_CHARS = frozenset(ALPHABET)
_CLASS_CHARS = {
    layouts.ALPHA: frozenset(LETTERS + FILLER),
    layouts.NUMERIC: frozenset(DIGITS + FILLER),
    layouts.ALNUM: _MRZ_CHARS,
}
_DELETE_MRZ = str.maketrans("", "", ALPHABET)
_SEXES = frozenset("MFX<")
_DIGIT_VALUE = {d: i for i, d in enumerate(DIGITS)}


def split_names(raw: str) -> tuple[str, str]:
    """Primary and secondary identifiers: split at the first ``<<``, runs of ``<`` to spaces.

    A name without ``<<`` is a primary identifier (surname) only.
    """
    primary, sep, secondary = raw.partition("<<")
    surname = " ".join(part for part in primary.split(FILLER) if part)
    given = " ".join(part for part in secondary.split(FILLER) if part) if sep else ""
    return surname, given


def _digit_matches(char: str, data: str) -> bool:
    value = _DIGIT_VALUE.get(char)
    return value is not None and check_value(data) == value


def _line_patterns(layout: Layout) -> tuple[re.Pattern[str], ...]:
    """One regex per line accepting exactly the field classes (the fast path for good input)."""
    classes = {layouts.ALPHA: "[A-Z<]", layouts.NUMERIC: "[0-9<]", layouts.ALNUM: "[A-Z0-9<]"}
    patterns = []
    for line in range(layout.line_count):
        cols = ["[0-9<]"] * layout.line_length  # check digits: digits (fillers judged later)
        for f in layout.fields:
            if f.line == line:
                for col in range(f.start, f.end):
                    cols[col] = classes[f.cls]
        patterns.append(re.compile("".join(cols)))
    return tuple(patterns)


_PATTERNS = {doc_type: _line_patterns(lay) for doc_type, lay in layouts.LAYOUTS.items()}
# Plain tuples for the hot path: attribute lookups cost more than the slicing itself.
_FIELD_PLANS = {
    doc_type: tuple((f.name, f.line, f.start, f.end) for f in lay.fields)
    for doc_type, lay in layouts.LAYOUTS.items()
}
_CHECK_PLANS = {
    doc_type: tuple((c.field, c.line, c.pos, *c.sources[0]) for c in lay.checks[1:])
    for doc_type, lay in layouts.LAYOUTS.items()
}


def structure_failure(
    lines: Sequence[str], mode: str = STRICT, normalised: tuple[str, ...] = ()
) -> MrzResult:
    """The result for lines that match no layout: every field ``None``."""
    count = len(lines)
    error: MrzError
    if count == 1:
        # Naming the line and its length tells an integrator at once that a reader sent the
        # whole MRZ as one line (88, 72 or 90 characters), which tolerant mode splits.
        error = MrzError(
            "structure",
            "lines",
            (0, len(lines[0])),
            f"expected 2 or 3 lines, got 1 line of {len(lines[0])} characters"
            + (" (a joined MRZ: tolerant mode splits it)" if len(lines[0]) in (72, 88, 90) else ""),
        )
    elif count not in (2, 3):
        error = MrzError("structure", "lines", None, "expected 2 or 3 lines")
    else:
        allowed = (30,) if count == 3 else (36, 44)
        expected = len(lines[0]) if len(lines[0]) in allowed else None
        error = MrzError("structure", "lines", (0, len(lines[0])), "unexpected line length")
        if expected is not None:
            for i, line in enumerate(lines):
                if len(line) != expected:
                    error = MrzError(
                        "structure", "lines", (i, min(len(line), expected)), "unequal line length"
                    )
                    break
    return empty_result((error,), mode, normalised)


def empty_result(
    errors: tuple[MrzError, ...], mode: str = STRICT, normalised: tuple[str, ...] = ()
) -> MrzResult:
    """An invalid result with no located field (bad structure or unreadable input)."""
    return MrzResult(
        False, None, None, None, None, None, None, None, None, None, None, None, None, None,
        None, None, None, None, None, errors, mode, (), normalised,
    )  # fmt: skip


def parse_lines(
    lines: Sequence[str], mode: str = STRICT, normalised: tuple[str, ...] = ()
) -> MrzResult:
    """Parse lines exactly as given (no normalisation, no repair)."""
    layout = layouts.detect(lines)
    if layout is None:
        return structure_failure(lines, mode, normalised)
    return _parse_layout(layout, lines, mode, normalised)


def _parse_layout(
    layout: Layout, lines: Sequence[str], mode: str, normalised: tuple[str, ...]
) -> MrzResult:
    errors: list[MrzError] = []
    raw: dict[str, str | None]
    if all(p.fullmatch(line) for p, line in zip(_PATTERNS[layout.doc_type], lines, strict=True)):
        line_bad = [False] * len(lines)
        raw = {name: lines[ln][s:e] for name, ln, s, e in _FIELD_PLANS[layout.doc_type]}
    else:
        line_bad, raw = _diagnose(layout, lines, errors)

    # Document number, with the TD1/TD2 overflow into optional data (Parts 5/6, note j).
    num_check = layout.checks[0]
    num_line, num_start, num_end = num_check.sources[0]
    number = raw["document_number"]
    optional = raw.get("optional_data")
    check_line, check_pos = num_check.line, num_check.pos
    number_ok = False
    if number is not None:
        check_char = lines[check_line][check_pos]
        number_data = lines[num_line][num_start:num_end]
        ov = layout.overflow
        if ov is not None and check_char == FILLER and optional and optional[0] != FILLER:
            # A long number: 9 principal characters, a filler, then the rest of the number
            # and its check digit at the start of the optional data. The check covers the
            # number alone, without the filler.
            end = optional.find(FILLER)
            if end < 0:
                end = len(optional)
            number += optional[: end - 1]
            number_data += lines[ov.line][ov.start : ov.start + end - 1]
            check_line, check_pos = ov.line, ov.start + end - 1
            check_char = optional[end - 1]
            optional = optional[end + 1 :]
        number_ok = _digit_matches(check_char, number_data)
    if not number_ok:
        errors.append(MrzError("check", "document_number", (check_line, check_pos)))

    oks: dict[str, bool] = {}
    for field, line, pos, ln, s, e in _CHECK_PLANS[layout.doc_type]:
        char = lines[line][pos]
        if raw[field] is None:
            ok = False  # the checked field holds characters outside its class
        else:
            ok = _digit_matches(char, lines[ln][s:e])
            if not ok and field == "personal_number" and char == FILLER:
                ok = lines[ln][s:e] == FILLER * (e - s)
        oks[field] = ok
        if not ok:
            errors.append(MrzError("check", field, (line, pos)))

    composite_ok: bool | None = None
    comp = layout.composite
    if comp is not None:
        data = "".join([lines[ln][s:e] for ln, s, e in comp.sources])
        composite_ok = not any(line_bad[ln] for ln, _, _ in comp.sources) and _digit_matches(
            lines[comp.line][comp.pos], data
        )
        if not composite_ok:
            errors.append(MrzError("check", "composite", (comp.line, comp.pos)))

    # Semantic rules (the character classes already hold).
    code = raw["document_code"]
    if code is not None and code[0] == FILLER:
        errors.append(MrzError("structure", "document_code", (0, 0), "must start with a letter"))
    birth = raw["birth_date"]
    if birth is not None and not birth_date_ok(birth):
        spec = layout.field("birth_date")
        errors.append(MrzError("semantic", "birth_date", (spec.line, spec.start), "not a date"))
    expiry = raw["expiry_date"]
    if expiry is not None and not expiry_date_ok(expiry):
        spec = layout.field("expiry_date")
        errors.append(MrzError("semantic", "expiry_date", (spec.line, spec.start), "not a date"))
    sex = raw["sex"]
    if sex is not None and sex not in _SEXES:
        spec = layout.field("sex")
        errors.append(MrzError("semantic", "sex", (spec.line, spec.start), "not M, F, X or <"))

    names = raw["names"]
    surname, given = split_names(names) if names is not None else (None, None)
    is_td3 = layout.doc_type == layouts.TD3
    personal = raw.get("personal_number")
    personal_out = personal.strip(FILLER) if personal is not None else None
    if is_td3:
        optional_out = personal_out
    else:
        optional_out = optional.strip(FILLER) if optional is not None else None
    optional_2 = raw.get("optional_data_2")
    if len(errors) > 1:
        errors = _ordered_unique(errors)
    return MrzResult(
        not errors,
        layout.doc_type,
        code.strip(FILLER) if code is not None else None,
        _strip(raw["issuing_state"]),
        surname,
        given,
        number.strip(FILLER) if number is not None else None,
        _strip(raw["nationality"]),
        birth,
        sex,
        expiry,
        optional_out,
        optional_2.strip(FILLER) if optional_2 is not None else None,
        personal_out if is_td3 else None,
        number_ok,
        oks["birth_date"],
        oks["expiry_date"],
        oks["personal_number"] if is_td3 else None,
        composite_ok,
        tuple(errors),
        mode,
        (),
        normalised,
    )


def _diagnose(
    layout: Layout, lines: Sequence[str], errors: list[MrzError]
) -> tuple[list[bool], dict[str, str | None]]:
    """The slow path: name every character outside the MRZ set or its field's class.

    Returns which lines hold non-MRZ characters, and the raw fields (``None`` where a field
    breaks its class, so it cannot be located).
    """
    line_bad = [bool(line.translate(_DELETE_MRZ)) for line in lines]
    for i, line in enumerate(lines):
        if line_bad[i]:
            owners = layout.owners[i]
            errors.extend(
                MrzError("charset", owners[col], (i, col), "character outside the MRZ set")
                for col, ch in enumerate(line)
                if ch not in _MRZ_CHARS
            )
    raw: dict[str, str | None] = {}
    for f in layout.fields:
        text = lines[f.line][f.start : f.end]
        allowed = _CLASS_CHARS[f.cls]
        if allowed.issuperset(text):
            raw[f.name] = text
            continue
        raw[f.name] = None
        if _MRZ_CHARS.issuperset(text):
            col = next(i for i, ch in enumerate(text) if ch not in allowed)
            errors.append(
                MrzError("charset", f.name, (f.line, f.start + col), "wrong character class")
            )
    return line_bad, raw


def _strip(text: str | None) -> str | None:
    return text.strip(FILLER) if text is not None else None


def _ordered_unique(errors: list[MrzError]) -> list[MrzError]:
    """Errors in position order, one per ``kind:field`` (the first position wins)."""
    seen: set[str] = set()
    out = []
    for err in sorted(errors, key=lambda e: e.position or (-1, -1)):
        if err.code not in seen:
            seen.add(err.code)
            out.append(err)
    return out
