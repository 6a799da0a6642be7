"""A readable summary of one parse result, for a person at a terminal (not for logs)."""

from __future__ import annotations

import datetime as _dt

from firmware.mrz.codes import describe_document, describe_state
from firmware.mrz.result import MrzResult


def _check(ok: bool | None) -> str:
    return "" if ok is None else ("check ok" if ok else "CHECK FAILED")


def format_summary(result: MrzResult, title: str, today: _dt.date | None = None) -> str:
    """Several lines describing ``result``; dates get an inferred century for display."""
    today = today or _dt.date.today()
    verdict = "VALID" if result.valid else "INVALID"
    kind = describe_document(result.document_code) or "document"
    head = f"{title}: {result.doc_type or 'unrecognised layout'}"
    head += f" {kind} - {verdict}" if result.doc_type else f" - {verdict}"
    rows: list[tuple[str, str | None, str]] = []
    if result.doc_type:
        state_note = describe_state(result.issuing_state)
        nat_note = describe_state(result.nationality)
        birth = result.birth_date_display(today)
        expiry = result.expiry_date_display(today)
        expired = result.is_expired(today)
        rows += [
            ("Document code", f"{result.document_code} ({kind})" if result.document_code else None, ""),
            (
                "Issuing state",
                f"{result.issuing_state} ({state_note})" if state_note else result.issuing_state,
                "",
            ),
            ("Surname", result.surname, ""),
            ("Given names", result.given_names, ""),
            ("Document number", result.document_number, _check(result.document_number_ok)),
            ("Nationality", f"{result.nationality} ({nat_note})" if nat_note else result.nationality, ""),
            ("Birth date", f"{result.birth_date} ({birth})" if birth else result.birth_date,
             _check(result.birth_date_ok)),
            ("Sex", result.sex, ""),
            ("Expiry date",
             f"{result.expiry_date} ({expiry}{', expired' if expired else ''})" if expiry
             else result.expiry_date, _check(result.expiry_date_ok)),
        ]  # fmt: skip
        if result.personal_number is not None:
            rows.append(("Personal number", result.personal_number, _check(result.optional_ok)))
        else:
            rows.append(("Optional data", result.optional_data, ""))
        if result.optional_data_2 is not None:
            rows.append(("Optional data 2", result.optional_data_2, ""))
        if result.composite_ok is not None:
            rows.append(("Composite", "", _check(result.composite_ok)))
    out = [head]
    for label, value, note in rows:
        shown = "(unreadable)" if value is None else value
        out.append(f"  {label:<16} {shown:<28} {note}".rstrip())
    if result.normalised:
        out.append("  Normalised:      " + ", ".join(result.normalised))
    if result.repair_status:
        out.append(f"  Repair:          {result.repair_status}")
    for line, pos, old, new in result.repaired:
        out.append(f"    line {line + 1}, column {pos + 1}: {old} -> {new}")
    if result.errors:
        out.append("  Errors:")
        out.extend(f"    {err}" for err in result.errors)
    else:
        out.append("  Errors:          none")
    return "\n".join(out)
