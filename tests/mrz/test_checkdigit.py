"""Check digits: the Doc 9303-3 Appendix A worked examples, and every check digit broken."""

from __future__ import annotations

import pytest

from firmware.errors import MrzError
from firmware.mrz import compute_check_digit, make_td3, parse
from firmware.mrz.layouts import LAYOUTS
from tests.mrz.golden import load_specimens

SPECIMENS = load_specimens()


@pytest.mark.parametrize(
    ("text", "digit"),
    [
        ("520727", 3),  # Part 3 App. A example 1 (27 July 1952)
        ("AB2134<<<", 5),  # example 2
        ("L898902C3", 6),
        ("740812", 2),
        ("120415", 9),
        ("ZE184226B<<<<<", 1),
        ("D23145890734", 9),  # Part 11 D.2: the long number, without the filler
        ("D23145890<734", 9),  # the filler counts 0 but shifts the weights: same digit here
        ("<<<<<<<<<<<<<<", 0),
        ("", 0),
    ],
)
def test_worked_examples(text, digit):
    assert compute_check_digit(text) == digit


def test_composite_examples_of_part3_appendix_a():
    # Example 3 (TD3) and 5 (TD2): lower lines with their composite digits 8 and 8.
    td3 = "HA672242<6YTO5802254M9601086<<<<<<<<<<<<<<0"
    assert compute_check_digit(td3[0:10] + td3[13:20] + td3[21:43]) == 8
    td2 = "HA672242<6YTO5802254M9601086<<<<<<<"
    assert compute_check_digit(td2[0:10] + td2[13:20] + td2[21:35]) == 8
    # Example 4 (TD1): upper line and middle line, composite digit 2.
    up, mid = "I<YTOD231458907<<<<<<<<<<<<<<<", "3407127M9507122YTO<<<<<<<<<<<"
    assert compute_check_digit(up[5:30] + mid[0:7] + mid[8:15] + mid[18:29]) == 2


def test_appendix_a_lines_parse_as_whole_documents():
    def name(width):
        return "SPECIMEN<<EXAMPLE".ljust(width, "<")

    td3 = ["P<YTO" + name(39), "HA672242<6YTO5802254M9601086<<<<<<<<<<<<<<08"]
    td2 = ["I<YTO" + name(31), "HA672242<6YTO5802254M9601086<<<<<<<8"]
    td1 = ["I<YTOD231458907<<<<<<<<<<<<<<<", "3407127M9507122YTO<<<<<<<<<<<2", name(30)]
    for lines in (td3, td2, td1):
        result = parse(lines)
        assert result.valid, result
        assert result.issuing_state == "YTO"


@pytest.mark.parametrize("bad", ["l898902c3", "AB 12", "Ä", "12#"])
def test_check_digit_rejects_other_characters_without_echoing_them(bad):
    with pytest.raises(MrzError) as info:
        compute_check_digit(bad)
    assert info.value.kind == "charset"
    assert bad not in str(info.value)


# The TD1 long-number specimen keeps its number's check digit in the optional data.
_EXTRA_CHECKS = {"td1-long-number-part11": [((0, 18), "document_number")]}


def _check_positions(spec):
    layout = LAYOUTS[spec["expected"]["doc_type"]]
    found = []
    for check in (*layout.checks, *((layout.composite,) if layout.composite else ())):
        if spec["lines"][check.line][check.pos].isdigit():
            found.append(((check.line, check.pos), check.field))
    return found + _EXTRA_CHECKS.get(spec["id"], [])


_OK_FLAG = {
    "document_number": "document_number_ok",
    "birth_date": "birth_date_ok",
    "expiry_date": "expiry_date_ok",
    "personal_number": "optional_ok",
    "composite": "composite_ok",
}

_CASES = [
    (spec, pos, field, digit)
    for spec in SPECIMENS
    for pos, field in _check_positions(spec)
    for digit in "0123456789"
    if spec["lines"][pos[0]][pos[1]] != digit
]


def test_every_check_digit_of_every_type_is_covered():
    fields = {(s["expected"]["doc_type"], f) for s, _, f, _ in _CASES}
    for doc_type in ("TD1", "TD2", "TD3"):
        assert {
            (doc_type, f) for f in ("document_number", "birth_date", "expiry_date", "composite")
        } <= fields
    assert ("TD3", "personal_number") in fields
    for doc_type in ("MRVA", "MRVB"):
        assert {(doc_type, f) for f in ("document_number", "birth_date", "expiry_date")} <= fields


@pytest.mark.parametrize(
    ("spec", "pos", "field", "digit"),
    _CASES,
    ids=[f"{s['id']}-{f}-{d}" for s, _, f, d in _CASES],
)
def test_breaking_one_check_digit_is_reported_for_its_field(spec, pos, field, digit):
    lines = list(spec["lines"])
    line, col = pos
    lines[line] = lines[line][:col] + digit + lines[line][col + 1 :]
    for mode in ("strict", "tolerant"):
        result = parse(lines, mode)
        assert not result.valid
        assert f"check:{field}" in result.error_codes
        assert getattr(result, _OK_FLAG[field]) is False
        err = next(e for e in result.errors if e.code == f"check:{field}")
        assert err.position == pos
        # Every other check that does not cover this digit still passes.
        others = set(result.error_codes) - {f"check:{field}", "check:composite"}
        assert others == set()
        # The fields themselves are still located and reported raw.
        assert result.document_number is not None and result.birth_date is not None


def test_td3_empty_personal_number_check_may_be_zero_or_filler():
    zero = make_td3(personal_number="")
    filler = make_td3(personal_number="", empty_personal_check="<")
    assert zero[1][42] == "0" and filler[1][42] == "<"
    for lines in (zero, filler):
        result = parse(lines)
        assert result.valid and result.optional_ok is True and result.personal_number == ""
    broken = [zero[0], zero[1][:42] + "1" + zero[1][43:]]
    assert parse(broken).error_codes[0] == "check:personal_number"
    # A filler check digit beside a personal number that is present is a failed check.
    present = make_td3(personal_number="AB12")
    result = parse([present[0], present[1][:42] + "<" + present[1][43:]])
    assert result.optional_ok is False and "check:personal_number" in result.error_codes
