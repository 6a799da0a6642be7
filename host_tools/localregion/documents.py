"""Documents for scripted scans: damaged copies of valid sample MRZs.

Each function returns new MRZ lines and checks its own result with the MRZ engine, so a
sample that cannot be damaged the intended way raises ``ValueError`` instead of producing
a document that would not test what the caller meant.
"""

from __future__ import annotations

from firmware.mrz import parse


def bad_check_digit(lines: list[str]) -> list[str]:
    """A TD3 with its document number's check digit changed so that no OCR repair can
    explain it: strict, tolerant and repair modes all refuse it."""
    body = lines[1]
    for d in "3467":
        bad = [lines[0], body[:9] + d + body[10:]]
        if bad != lines and not parse(bad, "repair").valid:
            return bad
    raise ValueError("could not make a bad-check-digit document from this sample")


def ocr_error(lines: list[str]) -> list[str]:
    """A TD3 with one 0 read as O (in the document number, else the birth date): strict
    mode refuses it, repair mode restores the same document number."""
    body = lines[1]
    candidates = [i for i in range(0, 9) if body[i] == "0"] + [
        i for i in range(13, 19) if body[i] == "0"
    ]
    for i in candidates:
        bad = [lines[0], body[:i] + "O" + body[i + 1 :]]
        r = parse(bad, "repair")
        if (
            not parse(bad, "strict").valid
            and r.valid
            and r.document_number == parse(lines).document_number
        ):
            return bad
    raise ValueError("no zero to misread in this sample document")
