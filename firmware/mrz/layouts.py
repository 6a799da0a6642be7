"""Where every field and check digit sits in each ICAO 9303 document type (Parts 4-7).

Positions are 0-based ``(line, column)``. The tables are data, built once at import; the
parser walks them instead of hard-coding slices per document type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Character classes of data fields.
ALPHA = "A"  # letters and filler: codes, names, sex
NUMERIC = "N"  # digits and filler: dates (where a filler may stand is a semantic rule)
ALNUM = "AN"  # letters, digits and filler: numbers and optional data

TD1, TD2, TD3, MRVA, MRVB = "TD1", "TD2", "TD3", "MRVA", "MRVB"
DOC_TYPES = (TD1, TD2, TD3, MRVA, MRVB)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A data field: output name, line, ``[start, end)`` columns and character class."""

    name: str
    line: int
    start: int
    end: int
    cls: str


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check digit at ``(line, pos)`` over the concatenated ``sources`` ``(line, start, end)``."""

    field: str
    line: int
    pos: int
    sources: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """One document type: its shape, fields, check digits and derived position maps."""

    doc_type: str
    line_count: int
    line_length: int
    fields: tuple[FieldSpec, ...]
    checks: tuple[CheckSpec, ...]
    composite: CheckSpec | None
    overflow: FieldSpec | None
    """The optional-data field that may carry a long document number (TD1, TD2)."""
    owners: tuple[tuple[str, ...], ...]
    """``owners[line][col]``: the field a position belongs to (check digits: the field checked)."""
    covered: frozenset[tuple[int, int]]
    """Positions inside some check digit's input, or holding a check digit."""

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _layout(
    doc_type: str,
    *,
    line_count: int,
    line_length: int,
    fields: Sequence[FieldSpec],
    checks: Sequence[CheckSpec],
    composite: CheckSpec | None,
    overflow: str | None,
) -> Layout:
    owners = [[""] * line_length for _ in range(line_count)]
    for f in fields:
        for col in range(f.start, f.end):
            owners[f.line][col] = f.name
    covered: set[tuple[int, int]] = set()
    for c in (*checks, *((composite,) if composite else ())):
        owners[c.line][c.pos] = c.field
        covered.add((c.line, c.pos))
        for line, start, end in c.sources:
            covered.update((line, col) for col in range(start, end))
    for line in owners:
        missing = [i for i, name in enumerate(line) if not name]
        assert not missing, f"{doc_type}: unassigned columns {missing}"
    spec_by_name = {f.name: f for f in fields}
    return Layout(
        doc_type=doc_type,
        line_count=line_count,
        line_length=line_length,
        fields=tuple(fields),
        checks=tuple(checks),
        composite=composite,
        overflow=spec_by_name[overflow] if overflow else None,
        owners=tuple(tuple(line) for line in owners),
        covered=frozenset(covered),
    )


def _upper_name_line(length: int) -> list[FieldSpec]:
    """Line 1 of TD2, TD3 and visas: code, issuing state, names."""
    return [
        FieldSpec("document_code", 0, 0, 2, ALPHA),
        FieldSpec("issuing_state", 0, 2, 5, ALPHA),
        FieldSpec("names", 0, 5, length, ALPHA),
    ]


def _lower_line_common() -> list[FieldSpec]:
    """Columns 0-27 of line 2 of TD2, TD3 and visas."""
    return [
        FieldSpec("document_number", 1, 0, 9, ALNUM),
        FieldSpec("nationality", 1, 10, 13, ALPHA),
        FieldSpec("birth_date", 1, 13, 19, NUMERIC),
        FieldSpec("sex", 1, 20, 21, ALPHA),
        FieldSpec("expiry_date", 1, 21, 27, NUMERIC),
    ]


def _lower_checks_common() -> list[CheckSpec]:
    return [
        CheckSpec("document_number", 1, 9, ((1, 0, 9),)),
        CheckSpec("birth_date", 1, 19, ((1, 13, 19),)),
        CheckSpec("expiry_date", 1, 27, ((1, 21, 27),)),
    ]


LAYOUT_TD3 = _layout(
    TD3,
    line_count=2,
    line_length=44,
    fields=[
        *_upper_name_line(44),
        *_lower_line_common(),
        FieldSpec("personal_number", 1, 28, 42, ALNUM),
    ],
    checks=[*_lower_checks_common(), CheckSpec("personal_number", 1, 42, ((1, 28, 42),))],
    composite=CheckSpec("composite", 1, 43, ((1, 0, 10), (1, 13, 20), (1, 21, 43))),
    overflow=None,
)

LAYOUT_TD2 = _layout(
    TD2,
    line_count=2,
    line_length=36,
    fields=[
        *_upper_name_line(36),
        *_lower_line_common(),
        FieldSpec("optional_data", 1, 28, 35, ALNUM),
    ],
    checks=_lower_checks_common(),
    composite=CheckSpec("composite", 1, 35, ((1, 0, 10), (1, 13, 20), (1, 21, 35))),
    overflow="optional_data",
)

LAYOUT_TD1 = _layout(
    TD1,
    line_count=3,
    line_length=30,
    fields=[
        FieldSpec("document_code", 0, 0, 2, ALPHA),
        FieldSpec("issuing_state", 0, 2, 5, ALPHA),
        FieldSpec("document_number", 0, 5, 14, ALNUM),
        FieldSpec("optional_data", 0, 15, 30, ALNUM),
        FieldSpec("birth_date", 1, 0, 6, NUMERIC),
        FieldSpec("sex", 1, 7, 8, ALPHA),
        FieldSpec("expiry_date", 1, 8, 14, NUMERIC),
        FieldSpec("nationality", 1, 15, 18, ALPHA),
        FieldSpec("optional_data_2", 1, 18, 29, ALNUM),
        FieldSpec("names", 2, 0, 30, ALPHA),
    ],
    checks=[
        CheckSpec("document_number", 0, 14, ((0, 5, 14),)),
        CheckSpec("birth_date", 1, 6, ((1, 0, 6),)),
        CheckSpec("expiry_date", 1, 14, ((1, 8, 14),)),
    ],
    composite=CheckSpec("composite", 1, 29, ((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29))),
    overflow="optional_data",
)

LAYOUT_MRVA = _layout(
    MRVA,
    line_count=2,
    line_length=44,
    fields=[
        *_upper_name_line(44),
        *_lower_line_common(),
        FieldSpec("optional_data", 1, 28, 44, ALNUM),
    ],
    checks=_lower_checks_common(),
    composite=None,
    overflow=None,
)

LAYOUT_MRVB = _layout(
    MRVB,
    line_count=2,
    line_length=36,
    fields=[
        *_upper_name_line(36),
        *_lower_line_common(),
        FieldSpec("optional_data", 1, 28, 36, ALNUM),
    ],
    checks=_lower_checks_common(),
    composite=None,
    overflow=None,
)

LAYOUTS = {
    lay.doc_type: lay for lay in (LAYOUT_TD1, LAYOUT_TD2, LAYOUT_TD3, LAYOUT_MRVA, LAYOUT_MRVB)
}

# (line count, line length) -> (layout for documents, layout for visas)
_BY_SHAPE: dict[tuple[int, int], tuple[Layout, Layout | None]] = {
    (3, 30): (LAYOUT_TD1, None),
    (2, 36): (LAYOUT_TD2, LAYOUT_MRVB),
    (2, 44): (LAYOUT_TD3, LAYOUT_MRVA),
}


def detect(lines: Sequence[str]) -> Layout | None:
    """The layout for these lines from their count and length, or ``None``.

    A two-line MRZ whose document code starts with ``V`` is a visa (Part 7).
    """
    count = len(lines)
    if count not in (2, 3):
        return None
    length = len(lines[0])
    for line in lines:
        if len(line) != length:
            return None
    pair = _BY_SHAPE.get((count, length))
    if pair is None:
        return None
    document, visa = pair
    if visa is not None and lines[0][:1] == "V":
        return visa
    return document
