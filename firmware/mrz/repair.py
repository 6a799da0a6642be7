"""Repair mode: undo OCR confusions (O/0, I/1, B/8, S/5, Z/2, G/6) that check digits confirm.

Two kinds of substitution:

1. *Forced by the character class*: a letter from the confusion set in a numeric field or
   check digit becomes its digit; a digit in a letters-only field (codes, names) becomes
   its letter. There is exactly one way to make such a character legal.
2. *Chosen by the check digits*: in alphanumeric fields (document number and its overflow,
   personal number, optional data under the composite) both readings are legal, so every
   set of substitutions is tried, smallest first. A repair is accepted only when exactly one
   candidate of the smallest size makes every check digit pass; two or more is ambiguous and
   the input is returned unrepaired.

Nothing is repaired when the result would still fail: the caller gets the original errors.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

from firmware.mrz import layouts
from firmware.mrz.checkdigit import FILLER, VALUES, check_sum, weight_at
from firmware.mrz.layouts import Layout
from firmware.mrz.parse import parse_lines
from firmware.mrz.result import REPAIR, MrzResult, Repair

LETTER_TO_DIGIT = {"O": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}
DIGIT_TO_LETTER = {d: c for c, d in LETTER_TO_DIGIT.items()}
PARTNER = {**LETTER_TO_DIGIT, **DIGIT_TO_LETTER}

MAX_SUBSTITUTIONS = 3
"""Chosen substitutions per document; a read with more confusions than this is refused."""

NOT_NEEDED, REPAIRED, AMBIGUOUS, IMPOSSIBLE = "not_needed", "repaired", "ambiguous", "impossible"
_FIXABLE = frozenset({"check:document_number", "check:personal_number", "check:composite"})

Position = tuple[int, int]


def repair(lines: tuple[str, ...], normalised: tuple[str, ...] = ()) -> MrzResult:
    """Parse ``lines`` (already normalised), repairing OCR confusions when unambiguous."""
    base = parse_lines(lines, REPAIR, normalised)
    if base.valid:
        return _with(base, (), NOT_NEEDED)
    layout = layouts.LAYOUTS.get(base.doc_type or "")
    if layout is None:
        return _with(base, (), IMPOSSIBLE)
    grid = [list(line) for line in lines]
    forced = _forced(layout, grid)
    current = parse_lines(["".join(row) for row in grid], REPAIR, normalised) if forced else base
    if current.valid:
        return _with(current, tuple(forced), REPAIRED)
    if not set(current.error_codes) <= _FIXABLE:
        return _with(base, (), IMPOSSIBLE)
    status, chosen = _choose(layout, grid, current)
    if status != REPAIRED:
        return _with(base, (), status)
    for line, col, _old, new in chosen:
        grid[line][col] = new
    final = parse_lines(["".join(row) for row in grid], REPAIR, normalised)
    if not final.valid:
        return _with(base, (), IMPOSSIBLE)
    return _with(final, tuple(sorted([*forced, *chosen])), REPAIRED)


def _with(result: MrzResult, repaired: tuple[Repair, ...], status: str) -> MrzResult:
    return replace(result, mode=REPAIR, repaired=repaired, repair_status=status)


def _number_positions(layout: Layout, grid: list[list[str]]) -> tuple[list[Position], Position]:
    """The document number's character positions and its check digit position.

    Follows the TD1/TD2 overflow: a filler in the check position and an alphanumeric first
    optional character mean the number continues in the optional data.
    """
    check = layout.checks[0]
    line, start, end = check.sources[0]
    positions = [(line, col) for col in range(start, end)]
    ov = layout.overflow
    if (
        ov is not None
        and grid[check.line][check.pos] == FILLER
        and grid[ov.line][ov.start] != FILLER
    ):
        row = grid[ov.line]
        stop = ov.start
        while stop < ov.end and row[stop] != FILLER:
            stop += 1
        positions += [(ov.line, col) for col in range(ov.start, stop - 1)]
        return positions, (ov.line, stop - 1)
    return positions, (check.line, check.pos)


def _forced(layout: Layout, grid: list[list[str]]) -> list[Repair]:
    """Apply the class-forced substitutions in place; return them."""
    done: list[Repair] = []

    def sub(line: int, col: int, mapping: dict[str, str]) -> None:
        old = grid[line][col]
        new = mapping.get(old)
        if new is not None:
            grid[line][col] = new
            done.append((line, col, old, new))

    for f in layout.fields:
        if f.cls == layouts.NUMERIC:
            mapping = LETTER_TO_DIGIT
        elif f.cls == layouts.ALPHA and f.name != "sex":
            mapping = DIGIT_TO_LETTER
        else:
            continue
        for col in range(f.start, f.end):
            sub(f.line, col, mapping)
    checks = [*layout.checks[1:], *((layout.composite,) if layout.composite else ())]
    for c in checks:
        sub(c.line, c.pos, LETTER_TO_DIGIT)
    _, (line, col) = _number_positions(layout, grid)
    sub(line, col, LETTER_TO_DIGIT)
    return done


def _choose(layout: Layout, grid: list[list[str]], current: MrzResult) -> tuple[str, list[Repair]]:
    """Find the unique smallest set of alphanumeric substitutions passing every check."""
    failing = set(current.error_codes)
    segments: list[tuple[list[Position], Position]] = []
    number, number_check = _number_positions(layout, grid)
    if "check:document_number" in failing:
        segments.append((number, number_check))
    if "check:personal_number" in failing:
        pn = layout.field("personal_number")
        segments.append(([(1, col) for col in range(pn.start, pn.end)], (1, pn.end)))
    comp = layout.composite
    comp_index: dict[Position, int] = {}
    if comp is not None:
        for ln, s, e in comp.sources:
            for col in range(s, e):
                comp_index[(ln, col)] = len(comp_index)

    # Each candidate: (position, old, new, segment or -1, segment delta, composite delta).
    candidates: list[tuple[Position, str, str, int, int, int]] = []
    needs: list[int] = []
    # The number (with a long number's overflow and moved check digit) is never touched to
    # satisfy the composite alone: its own check digit would then fail.
    taken: set[Position] = {*number, number_check}
    for seg_id, (positions, (cl, cc)) in enumerate(segments):
        digit = grid[cl][cc]
        if not digit.isdigit():
            return IMPOSSIBLE, []
        data = "".join(grid[ln][col] for ln, col in positions)
        needs.append((int(digit) - check_sum(data.encode("ascii"))) % 10)
        for index, (ln, col) in enumerate(positions):
            taken.add((ln, col))
            old = grid[ln][col]
            new = PARTNER.get(old)
            if new is None:
                continue
            diff = VALUES[new] - VALUES[old]
            d_comp = diff * weight_at(comp_index[(ln, col)]) % 10 if (ln, col) in comp_index else 0
            candidates.append(((ln, col), old, new, seg_id, diff * weight_at(index) % 10, d_comp))
    need_comp = 0
    if comp is not None:
        digit = grid[comp.line][comp.pos]
        if not digit.isdigit():
            return IMPOSSIBLE, []
        data = "".join(grid[ln][col] for ln, s, e in comp.sources for col in range(s, e))
        need_comp = (int(digit) - check_sum(data.encode("ascii"))) % 10
        if "check:composite" in failing:
            for spec in layout.fields:
                if spec.cls != layouts.ALNUM or spec.name in ("document_number", "personal_number"):
                    continue
                for col in range(spec.start, spec.end):
                    pos = (spec.line, col)
                    old = grid[spec.line][col]
                    new = PARTNER.get(old)
                    if pos in taken or new is None or pos not in comp_index:
                        continue
                    d_comp = (VALUES[new] - VALUES[old]) * weight_at(comp_index[pos]) % 10
                    candidates.append((pos, old, new, -1, 0, d_comp))

    for size in range(1, MAX_SUBSTITUTIONS + 1):
        found: list[tuple[tuple[Position, str, str, int, int, int], ...]] = []
        for combo in combinations(candidates, size):
            sums = [0] * len(segments)
            comp_sum = 0
            for _pos, _old, _new, seg, d_seg, d_comp in combo:
                if seg >= 0:
                    sums[seg] += d_seg
                comp_sum += d_comp
            if comp_sum % 10 != need_comp:
                continue
            if all(s % 10 == n for s, n in zip(sums, needs, strict=True)):
                found.append(combo)
                if len(found) > 1:
                    return AMBIGUOUS, []
        if found:
            return REPAIRED, [(pos[0], pos[1], old, new) for pos, old, new, *_ in found[0]]
    return IMPOSSIBLE, []
