"""SLTD record value objects: non-nominal, frozen, validated at construction.

A record names a document (issuing state, category letter, number), what happened to it
(:class:`Status`), who reported it and when, and the reporting bureau's own reference. It
never holds a bearer's name. Past this module, code handles only valid records.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from firmware.errors import BadDataError

if TYPE_CHECKING:
    from firmware.protocol.dockey import DocumentKey


class Status(StrEnum):
    """What happened to the document (SLTD "type of fraud")."""

    STOLEN_BLANK = "STOLEN_BLANK"
    STOLEN = "STOLEN"
    LOST = "LOST"
    REVOKED = "REVOKED"
    INVALIDATED = "INVALIDATED"


#: Document categories: the first character of the MRZ document code.
CATEGORIES = ("P", "I", "A", "C", "V")

#: SLTD document type names accepted by the importer, mapped onto MRZ categories.
DOCUMENT_TYPES: dict[str, str] = {
    "PASSPORT": "P",
    "DIPLOMATIC_PASSPORT": "P",
    "SERVICE_PASSPORT": "P",
    "OFFICIAL_PASSPORT": "P",
    "EMERGENCY_PASSPORT": "P",
    "REFUGEE_TRAVEL_DOCUMENT": "P",
    "ID_CARD": "I",
    "RESIDENCE_PERMIT": "I",
    "OTHER_ID": "A",
    "CREW_CERTIFICATE": "C",
    "VISA": "V",
}

_STATE = re.compile(r"[A-Z]{1,3}")
_NUMBER = re.compile(r"[0-9A-Z]{1,22}")
#: A reference's characters: none that JSON escapes (``"``, ``\\``, controls, non-ASCII), so
#: a hit's response and alert keep their padded size whatever the reference (issue 13).
REFERENCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -/._:#")
REFERENCE_MAX = 64


def check_reference(value: object) -> None:
    """:class:`RecordError` naming the field and the first bad position (not the value)."""
    if not isinstance(value, str) or not 1 <= len(value) <= REFERENCE_MAX:
        raise RecordError("reference", f"must be 1-{REFERENCE_MAX} characters")
    for i, ch in enumerate(value, start=1):
        if ch not in REFERENCE_CHARS:
            raise RecordError(
                "reference",
                f"character {i} is not allowed (use A-Z a-z 0-9, space and - / . _ : #)",
            )
    if value[0] == " " or value[-1] == " ":
        raise RecordError("reference", "must not begin or end with a space")


class RecordError(BadDataError):
    """A record field that does not meet its format. ``field`` names it; no values echoed."""

    def __init__(self, field: str, detail: str):
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


def category_for(document_type: str) -> str:
    """Map an SLTD type name (``PASSPORT``) or a category letter (``P``) onto the letter."""
    t = document_type.strip().upper().replace(" ", "_").replace("-", "_")
    if t in CATEGORIES:
        return t
    try:
        return DOCUMENT_TYPES[t]
    except KeyError:
        raise RecordError(
            "document_type",
            f"unknown type; use one of {', '.join(CATEGORIES)} or {', '.join(DOCUMENT_TYPES)}",
        ) from None


def parse_status(text: str) -> Status:
    """``"stolen blank"``, ``"STOLEN_BLANK"`` -> :attr:`Status.STOLEN_BLANK`."""
    t = text.strip().upper().replace(" ", "_").replace("-", "_")
    try:
        return Status(t)
    except ValueError:
        raise RecordError("status", f"unknown status; use one of {', '.join(Status)}") from None


def parse_date(field: str, text: str) -> dt.date:
    """ISO 8601 calendar date (``YYYY-MM-DD``)."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise RecordError(field, "not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True, slots=True)
class SltdRecord:
    """One listed document. Field order is the contract in docs/architecture.md."""

    issuing_state: str
    document_type: str
    document_number: str
    status: Status
    reporting_country: str
    reported_on: dt.date
    reference: str
    event_date: dt.date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.issuing_state, str) or not _STATE.fullmatch(self.issuing_state):
            raise RecordError("issuing_state", "must be 1-3 letters A-Z (ICAO code, no fillers)")
        if self.document_type not in CATEGORIES:
            raise RecordError("document_type", f"must be one of {', '.join(CATEGORIES)}")
        if not isinstance(self.document_number, str) or not _NUMBER.fullmatch(self.document_number):
            raise RecordError("document_number", "must be 1-22 characters 0-9 A-Z, no fillers")
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", parse_status(str(self.status)))
        if not isinstance(self.reporting_country, str) or not _STATE.fullmatch(
            self.reporting_country
        ):
            raise RecordError("reporting_country", "must be 1-3 letters A-Z (ICAO code)")
        if not isinstance(self.reported_on, dt.date):
            raise RecordError("reported_on", "must be a date")
        if self.event_date is not None:
            if not isinstance(self.event_date, dt.date):
                raise RecordError("event_date", "must be a date or empty")
            if self.event_date > self.reported_on:
                raise RecordError("event_date", "is after reported_on")
        check_reference(self.reference)

    @property
    def key_tuple(self) -> tuple[str, str, str]:
        """``(issuing_state, category, number)``: the store's primary key."""
        return (self.issuing_state, self.document_type, self.document_number)

    def document_key(self) -> DocumentKey:
        """The :class:`firmware.protocol.dockey.DocumentKey` this record is listed under."""
        from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

        return DocumentKey(self.issuing_state, self.document_type, self.document_number)

    def canonical(self) -> bytes:
        """The bytes every keyed hash is over (same as ``DocumentKey.canonical()``)."""
        return canonical_bytes(*self.key_tuple)


def canonical_bytes(issuing_state: str, category: str, number: str) -> bytes:
    """``b"<state>|<category>|<number>"``, the canonical key bytes of docs/architecture.md.

    Used only for bulk index builds where constructing a DocumentKey per row would
    dominate; ``index.check_hash_agrees`` pins it to ``DocumentKey.canonical()``.
    """
    return f"{issuing_state}|{category}|{number}".encode("ascii")
