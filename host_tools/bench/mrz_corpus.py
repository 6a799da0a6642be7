"""The MRZ benchmark corpus: cases whose expected verdict and fields are known by construction.

Expectations never come from our own parser. Three sources:

- the ICAO Doc 9303 specimens (``tests/mrz/data/specimens.json``, transcribed from the spec);
- hand-written documents (``tests/mrz/data/bench_cases.json``: field values and lines laid
  out by hand, nothing computed by our code);
- generated documents: chosen field values laid out by :mod:`firmware.mrz.build`, and
  invalid ones with one defect put in on purpose.

So that the generated ones do not share a bug with the parser they score, the test
(tests/mrz/test_bench_corpus.py) reads every case again with its own check-digit routine
and ICAO field positions and requires the same verdict and fields, and requires the
builder to write the hand-written documents exactly. Categories cover what the
issue lists as weak spots of other parsers (long TD1/TD2 numbers, sex X, XXC/XPO/AC codes,
unknown birth-date parts, birth year next to the expiry year) as well as ordinary documents.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.mrz import build
from firmware.mrz.checkdigit import VALUES
from firmware.mrz.layouts import LAYOUTS

FIELDS = (
    "document_code",
    "issuing_state",
    "surname",
    "given_names",
    "document_number",
    "nationality",
    "birth_date",
    "sex",
    "expiry_date",
)
_DATA = Path(__file__).resolve().parents[2] / "tests" / "mrz" / "data"
_SPECIMENS = _DATA / "specimens.json"
_HAND_WRITTEN = _DATA / "bench_cases.json"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = "0123456789" + _LETTERS
_SURNAMES = ("ERIKSSON", "HENG", "SMITH JONES", "VAN DER MUELLEN", "AL BASRI", "OKAFOR", "NOVAK")
_GIVEN = ("ANNA MARIA", "DEBORAH MING LO", "PETER", "", "HUDA", "JOSE RAMON", "AIGERIM")
_STATES = ("UTO", "D", "FRA", "KAZ", "KGZ", "UZB", "TJK", "TKM", "RUS", "GBR", "NLD")


@dataclass
class Case:
    """One corpus document: its lines, the expected verdict and (if valid) fields."""

    category: str
    lines: list[str]
    valid: bool
    fields: dict[str, str] = field(default_factory=dict)


def _expected(fields: dict[str, Any]) -> dict[str, str]:
    out = {k: str(fields[k]) for k in FIELDS if k in fields}
    out["surname"] = " ".join(out["surname"].replace("-", " ").split())
    out["given_names"] = " ".join(out.get("given_names", "").split())
    out["document_code"] = out["document_code"].strip("<")
    return out


def _date(rng: random.Random, lo: int = 0, hi: int = 99) -> str:
    return f"{rng.randint(lo, hi):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _fields(rng: random.Random, doc_type: str) -> dict[str, str]:
    number_len = rng.randint(6, 9)
    code = {"TD3": "P", "TD1": "I", "TD2": "I", "MRVA": "V", "MRVB": "V"}[doc_type]
    return {
        "document_code": code + rng.choice(["<", code if code != "V" else "<", "D"])
        if code != "I"
        else rng.choice(["I<", "ID", "IR"]),
        "issuing_state": rng.choice(_STATES),
        "surname": rng.choice(_SURNAMES),
        "given_names": rng.choice(_GIVEN),
        "document_number": "".join(rng.choice(_ALNUM) for _ in range(number_len)),
        "nationality": rng.choice(_STATES),
        "birth_date": _date(rng, 40, 99),
        "sex": rng.choice("MF"),
        "expiry_date": _date(rng, 20, 35),
    }


_NAME_WIDTH = {"TD1": 30, "TD2": 31, "TD3": 39, "MRVA": 39, "MRVB": 31}


def _valid(category: str, doc_type: str, fields: dict[str, str]) -> Case:
    # Keep names within the field so the expected value needs no truncation rule.
    while len(fields["surname"]) + len(fields["given_names"]) + 2 > _NAME_WIDTH[doc_type]:
        fields["given_names"] = fields["given_names"].rpartition(" ")[0]
    return Case(category, build(doc_type, **fields), True, _expected(fields))


def _mutate(case: Case, rng: random.Random, doc_type: str) -> Case | None:
    """One character changed at a check-covered position to a value-distinct character."""
    layout = LAYOUTS[doc_type]
    positions = sorted(p for p in layout.covered if p != (0, 0))
    line, col = rng.choice(positions)
    old = case.lines[line][col]
    choices = [c for c in _ALNUM + "<" if VALUES[c] % 10 != VALUES[old] % 10]
    new = rng.choice(choices)
    lines = list(case.lines)
    lines[line] = lines[line][:col] + new + lines[line][col + 1 :]
    return Case(f"{case.category}/one_char_changed", lines, False)


def build_corpus(seed: int = 9303, per_type: int = 40) -> list[Case]:
    """The corpus: specimens, ordinary documents, hard cases and single-defect documents."""
    rng = random.Random(seed)
    cases: list[Case] = []
    if _SPECIMENS.exists():
        for spec in json.loads(_SPECIMENS.read_text())["specimens"]:
            exp = spec["expected"]
            cases.append(Case("icao_specimen", spec["lines"], True, {k: exp[k] for k in FIELDS}))
    if _HAND_WRITTEN.exists():
        for case in json.loads(_HAND_WRITTEN.read_text())["cases"]:
            exp = case["fields"]
            cases.append(
                Case(
                    f"hand_written/{case['category']}",
                    case["lines"],
                    True,
                    {k: exp[k] for k in FIELDS},
                )
            )
    for doc_type in sorted(LAYOUTS):
        for _ in range(per_type):
            cases.append(_valid(f"ordinary/{doc_type}", doc_type, _fields(rng, doc_type)))
    # Hard cases named in issue 2.
    for doc_type, limit in (("TD1", 22), ("TD2", 14)):
        for length in range(10, limit + 1):
            f = _fields(rng, doc_type)
            f["document_number"] = "".join(rng.choice(_ALNUM) for _ in range(length))
            cases.append(_valid(f"long_number/{doc_type}", doc_type, f))
    for doc_type in sorted(LAYOUTS):
        f = _fields(rng, doc_type)
        f["sex"] = "X"
        cases.append(_valid("sex_x", doc_type, f))
        f = _fields(rng, doc_type)
        f["sex"] = "<"
        cases.append(_valid("sex_unspecified", doc_type, f))
        for code in ("XXC", "XPO", "XXA", "XXB", "UNO", "UNA", "UNK", "EUE", "XOM", "D"):
            f = _fields(rng, doc_type)
            f["issuing_state"] = f["nationality"] = code
            cases.append(_valid(f"special_code/{code}", doc_type, f))
        for birth in ("<<<<<<", "74<<<<", "7408<<", "<<0812"):
            f = _fields(rng, doc_type)
            f["birth_date"] = birth
            cases.append(_valid("birth_unknown_parts", doc_type, f))
        # Elderly holders: the birth YYMMDD lies just after the expiry YYMMDD, a century
        # earlier (born 1925, document expired 2025). Assuming 20YY puts birth after expiry.
        for birth, expiry in (
            ("250601", "250531"),
            ("190310", "190309"),
            ("240229", "240228"),
            ("300505", "300101"),
            ("180610", "280609"),
        ):
            f = _fields(rng, doc_type)
            f["birth_date"], f["expiry_date"] = birth, expiry
            cases.append(_valid("birth_next_to_expiry", doc_type, f))
        for birth in ("000229", "040229"):
            f = _fields(rng, doc_type)
            f["birth_date"] = birth
            cases.append(_valid("leap_day", doc_type, f))
    for _ in range(6):
        f = _fields(rng, "TD1")
        f["document_code"] = "AC"
        cases.append(_valid("crew_member_AC", "TD1", f))
    # Invalid on purpose.
    valid_cases = [c for c in cases if c.category.startswith("ordinary/")]
    for case in valid_cases:
        doc_type = case.category.split("/")[1]
        bad = _mutate(case, rng, doc_type)
        if bad is not None:
            cases.append(bad)
    for doc_type in sorted(LAYOUTS):
        for birth in ("010229", "741312", "740431", "7<0812"):
            f = _fields(rng, doc_type)
            f["birth_date"] = birth
            cases.append(Case("invalid_date", build(doc_type, **f), False))
        f = _fields(rng, doc_type)
        lines = build(doc_type, **f)
        cases.append(Case("truncated_line", [lines[0], lines[1][:-1], *lines[2:]], False))
    return cases
