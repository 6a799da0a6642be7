"""The benchmark corpus and runner: our parser gets every case right, and run() reports.

The corpus's expectations are pinned with data that owes nothing to firmware.mrz: every
case is read again here with a check-digit routine and the ICAO Doc 9303 field positions
written in this file, the ICAO specimens are in the corpus, and the hand-written documents
(tests/mrz/data/bench_cases.json) must come out of our builder character for character.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from firmware.mrz import build
from host_tools.bench import mrz as bench_mrz
from host_tools.bench.mrz_corpus import FIELDS, build_corpus

DATA = Path(__file__).parent / "data"
HAND_WRITTEN = json.loads((DATA / "bench_cases.json").read_text())["cases"]


# -- an independent reader (ICAO Doc 9303 Parts 3-7) -------------------------------------------
def check_digit(text: str) -> str:
    """Part 3, 4.9: weights 7, 3, 1; 0-9 as themselves, A-Z as 10-35, '<' as 0."""

    def value(c: str) -> int:
        return 0 if c == "<" else int(c) if c.isdigit() else ord(c) - ord("A") + 10

    return str(sum(value(c) * (7, 3, 1)[i % 3] for i, c in enumerate(text)) % 10)


def _strip(text: str) -> str:
    return text.replace("<", " ").strip()


def _names(field: str) -> tuple[str, str]:
    primary, _, secondary = field.partition("<<")
    return " ".join(_strip(primary).split()), " ".join(_strip(secondary).split())


def _number(principal: str, cd: str, optional: str) -> tuple[str, bool]:
    """The document number and whether its check digit holds; a number longer than 9
    characters has a filler in the check digit place and goes on in the optional data,
    followed by its check digit and a filler (Part 5, 4.2.4 note j; Part 6 likewise)."""
    if cd != "<":
        return principal.rstrip("<"), check_digit(principal) == cd
    rest, _, _ = optional.partition("<")
    number = principal + rest[:-1]
    return number, len(rest) >= 2 and check_digit(number) == rest[-1]


def _date_ok(d: str) -> bool:
    """YYMMDD with unknown parts as whole '<<' pairs (Part 3, 4.2.2.2 / Part 4 note)."""
    parts = [d[0:2], d[2:4], d[4:6]]
    if any(p != "<<" and not p.isdigit() for p in parts):
        return False
    yy, mm, dd = (None if p == "<<" else int(p) for p in parts)
    if mm is not None and not 1 <= mm <= 12:
        return False
    if dd is None:
        return True
    days = {2: 29 if yy is None or yy % 4 == 0 else 28, 4: 30, 6: 30, 9: 30, 11: 30}
    return 1 <= dd <= (days.get(mm, 31) if mm is not None else 31)


def read(lines: list[str]) -> tuple[bool, dict[str, str]]:
    """Verdict and fields, from positions and rules written from the spec."""
    shape = (len(lines), len(lines[0]) if lines else 0)
    widths = {(3, 30): 30, (2, 36): 36, (2, 44): 44}
    if shape not in widths or any(len(x) != widths[shape] for x in lines):
        return False, {}
    visa = lines[0][0] == "V"
    code, state = lines[0][0:2].rstrip("<"), lines[0][2:5].rstrip("<")
    if shape == (3, 30):  # TD1, Part 5
        u, m, n = lines
        number, ok = _number(u[5:14], u[14], u[15:30])
        birth, sex, expiry, nat = m[0:6], m[7], m[8:14], m[15:18]
        checks = [ok, check_digit(birth) == m[6], check_digit(expiry) == m[14],
                  check_digit(u[5:30] + m[0:7] + m[8:15] + m[18:29]) == m[29]]  # fmt: skip
        surname, given = _names(n)
    else:  # TD3 (Part 4), TD2 (Part 6), MRV-A / MRV-B (Part 7)
        u, b = lines
        width = widths[shape]
        optional_end = {(44, False): 42, (36, False): 35, (44, True): 44, (36, True): 36}
        opt = b[28 : optional_end[width, visa]]
        number, ok = _number(b[0:9], b[9], opt if width == 36 and not visa else "")
        birth, sex, expiry, nat = b[13:19], b[20], b[21:27], b[10:13]
        checks = [ok, check_digit(birth) == b[19], check_digit(expiry) == b[27]]
        if width == 44 and not visa:  # personal number: '<' allowed for an empty one
            checks.append(b[42] == check_digit(opt) or (b[42] == "<" and set(opt) == {"<"}))
        if not visa:
            end = width - 1
            checks.append(check_digit(b[0:10] + b[13:20] + b[21:end]) == b[end])
        surname, given = _names(u[5:])
    fields = {
        "document_code": code, "issuing_state": state, "surname": surname,
        "given_names": given, "document_number": number, "nationality": nat.rstrip("<"),
        "birth_date": birth, "sex": sex, "expiry_date": expiry,
    }  # fmt: skip
    valid = (
        all(checks) and sex in "MFX<" and _date_ok(birth) and "<" not in expiry and _date_ok(expiry)
    )
    return valid, fields


# -- the reader against published data -------------------------------------------------------
def test_the_reader_agrees_with_every_icao_specimen():
    for spec in json.loads((DATA / "specimens.json").read_text())["specimens"]:
        exp = spec["expected"]
        valid, fields = read(spec["lines"])
        assert valid == exp["valid"], spec["id"]
        if valid:
            assert fields == {k: exp[k] for k in FIELDS}, spec["id"]


def test_check_digit_of_the_spec_examples():
    assert check_digit("L898902C3") == "6"  # Part 4 specimen number
    assert check_digit("740812") == "2" and check_digit("120415") == "9"
    assert check_digit("<<<<<<<<<<<<<<") == "0"


# -- the corpus, pinned ------------------------------------------------------------------------
@pytest.mark.parametrize("case", HAND_WRITTEN, ids=lambda c: c["category"])
def test_hand_written_documents_are_right_and_our_builder_writes_them(case):
    valid, fields = read(case["lines"])
    assert valid and fields == case["fields"]
    assert build(case["doc_type"], **case["fields"], **case["build_extra"]) == case["lines"]


def test_every_corpus_expectation_is_confirmed_by_the_independent_reader():
    cases = build_corpus()
    assert len(cases) > 500
    for case in cases:
        valid, fields = read(case.lines)
        assert valid == case.valid, (case.category, case.lines)
        if case.valid:
            assert fields == case.fields, case.category


def test_corpus_covers_the_hard_categories_and_both_verdicts():
    cases = build_corpus(per_type=5)
    categories = {c.category.split("/")[0] for c in cases}
    assert {"icao_specimen", "hand_written", "long_number", "sex_x", "special_code",
            "crew_member_AC", "birth_unknown_parts", "birth_next_to_expiry",
            "invalid_date"} <= categories  # fmt: skip
    assert sum(c.category.startswith("hand_written/") for c in cases) == len(HAND_WRITTEN)
    assert any(c.valid for c in cases) and any(not c.valid for c in cases)


def test_our_parser_gets_every_corpus_case_right():
    cases = build_corpus()
    right, wrong = bench_mrz._score(bench_mrz._ours(), cases)
    assert wrong == {} and right == len(cases)


def test_run_reports_figures_without_the_mrz_package():
    parser = argparse.ArgumentParser()
    bench_mrz.add_arguments(parser)
    args = parser.parse_args(["--seconds", "0.05", "--per-type", "2"])
    result = bench_mrz.run(args)
    assert result["fieldterm_correct"] == result["corpus_cases"]
    assert result["fieldterm_docs_per_s"] > 0
    assert "mrz_package" in result
