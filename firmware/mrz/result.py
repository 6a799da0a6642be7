"""The parse result: a frozen value object whose ``to_json()`` is the CLI contract object."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from firmware.errors import MrzError
from firmware.mrz import dates

STRICT, TOLERANT, REPAIR = "strict", "tolerant", "repair"
MODES = (STRICT, TOLERANT, REPAIR)

JSON_KEYS = (
    "valid",
    "doc_type",
    "document_code",
    "issuing_state",
    "surname",
    "given_names",
    "document_number",
    "nationality",
    "birth_date",
    "sex",
    "expiry_date",
    "optional_data",
    "optional_data_2",
    "personal_number",
    "document_number_ok",
    "birth_date_ok",
    "expiry_date_ok",
    "optional_ok",
    "composite_ok",
    "errors",
)
"""The keys of the ``fieldterm mrz parse --jsonl`` object, in output order (issue 2)."""

Repair = tuple[int, int, str, str]
"""One substitution: ``(line, position, from, to)``, line and position 0-based."""


@dataclass(frozen=True, slots=True, repr=False)
class MrzResult:
    """A parsed MRZ. Every field the CLI prints, plus mode, repairs and normalisations.

    Values follow the CLI contract: fillers stripped at both ends (``D<<`` is ``"D"``),
    dates and sex raw, ``None`` where a field cannot be located. ``repr()`` never shows
    MRZ content, so a result that reaches a log message leaks nothing.
    """

    valid: bool
    doc_type: str | None
    document_code: str | None
    issuing_state: str | None
    surname: str | None
    given_names: str | None
    document_number: str | None
    nationality: str | None
    birth_date: str | None
    sex: str | None
    expiry_date: str | None
    optional_data: str | None
    optional_data_2: str | None
    personal_number: str | None
    document_number_ok: bool | None
    birth_date_ok: bool | None
    expiry_date_ok: bool | None
    optional_ok: bool | None
    composite_ok: bool | None
    errors: tuple[MrzError, ...]
    mode: str = STRICT
    repaired: tuple[Repair, ...] = ()
    normalised: tuple[str, ...] = ()
    """What tolerant/repair mode changed before parsing (``line_breaks``, ``whitespace``,
    ``lowercase``, ``blank_lines``); empty in strict mode."""
    repair_status: str | None = None
    """Repair mode only: ``not_needed``, ``repaired``, ``ambiguous`` or ``impossible``."""

    @property
    def error_codes(self) -> list[str]:
        """The errors as ``"<kind>:<field>"`` strings, in position order."""
        return [e.code for e in self.errors]

    @property
    def category(self) -> str | None:
        """The document category: the first letter of the document code (``P``, ``I``, ``V``...)."""
        return self.document_code[:1] if self.document_code else None

    def to_json(self) -> dict[str, Any]:
        """Exactly the CLI contract object (with ``repaired`` in repair mode)."""
        out: dict[str, Any] = {
            "valid": self.valid,
            "doc_type": self.doc_type,
            "document_code": self.document_code,
            "issuing_state": self.issuing_state,
            "surname": self.surname,
            "given_names": self.given_names,
            "document_number": self.document_number,
            "nationality": self.nationality,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "expiry_date": self.expiry_date,
            "optional_data": self.optional_data,
            "optional_data_2": self.optional_data_2,
            "personal_number": self.personal_number,
            "document_number_ok": self.document_number_ok,
            "birth_date_ok": self.birth_date_ok,
            "expiry_date_ok": self.expiry_date_ok,
            "optional_ok": self.optional_ok,
            "composite_ok": self.composite_ok,
            "errors": [e.code for e in self.errors],
        }
        if self.mode == REPAIR:
            out["repaired"] = [
                {"line": line, "position": pos, "from": old, "to": new}
                for line, pos, old, new in self.repaired
            ]
        return out

    def birth_date_display(self, today: _dt.date | None = None) -> str | None:
        """The birth date as ``YYYY-MM-DD`` for a person (century inferred, ``??`` unknown)."""
        today = today or _dt.date.today()
        if self.birth_date is None:
            return None
        year = dates.birth_year(self.birth_date, today, self.expiry_date)
        return dates.display_date(self.birth_date, year)

    def expiry_date_display(self, today: _dt.date | None = None) -> str | None:
        """The expiry date as ``YYYY-MM-DD`` for a person (century inferred)."""
        today = today or _dt.date.today()
        if self.expiry_date is None:
            return None
        return dates.display_date(self.expiry_date, dates.expiry_year(self.expiry_date, today))

    def is_expired(self, today: _dt.date | None = None) -> bool | None:
        """Whether the expiry date is before ``today`` (``None`` if it cannot be read).

        An expired document is still a *valid* MRZ; this is for display and policy.
        """
        today = today or _dt.date.today()
        raw = self.expiry_date
        if raw is None or not dates.expiry_date_ok(raw):
            return None
        year = dates.expiry_year(raw, today)
        assert year is not None
        return _dt.date(year, int(raw[2:4]), int(raw[4:6])) < today

    def __repr__(self) -> str:
        return (
            f"MrzResult(valid={self.valid}, doc_type={self.doc_type}, mode={self.mode}, "
            f"errors={self.error_codes}, repaired={len(self.repaired)})"
        )

    __str__ = __repr__
