"""The SLTD store's port, shared by every backend: :class:`SltdStore`, the row and key
types, the row <-> record conversions and :class:`StaleChangeLog`.

Backends (:mod:`.sqlitestore`, :mod:`.pgstore`) import this module; :mod:`.store` picks
one by URL scheme and imports it only then, so no backend imports another and
PostgreSQL's driver loads only in its own backend.

The store knows nothing of index keys: records are keyed by ``(issuing_state,
document_type, document_number)``, and a lookup that the index flags as a possible hit
fetches the row by that exact key, which also rules out 64-bit hash collisions.

Every committed change bumps ``version`` (the list version). Small changes (import,
remove) are logged in a change table so a running index can apply them as a delta
(:meth:`SltdStore.changes_since`). Bulk loads are not logged; they raise
``rebuild_version`` instead, telling an index built before it to rebuild.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from firmware.errors import OperationError
from host_tools.sltd.records import SltdRecord, Status

#: A row as stored, in column order (dates as ISO text, event_date may be None).
Row = tuple[str, str, str, str, str, str, str | None, str]
#: ``(issuing_state, document_type, document_number)``.
KeyTuple = tuple[str, str, str]
#: ``("A" | "R", issuing_state, document_type, document_number)``: added/updated, removed.
Change = tuple[str, str, str, str]

COLUMNS = (
    "issuing_state",
    "document_type",
    "document_number",
    "status",
    "reporting_country",
    "reported_on",
    "event_date",
    "reference",
)


class StaleChangeLog(OperationError):
    """The changes asked for predate a bulk load; the index must be rebuilt from the store."""


def record_to_row(r: SltdRecord) -> Row:
    return (
        r.issuing_state,
        r.document_type,
        r.document_number,
        r.status.value,
        r.reporting_country,
        r.reported_on.isoformat(),
        r.event_date.isoformat() if r.event_date else None,
        r.reference,
    )


def row_to_record(row: Sequence[Any]) -> SltdRecord:
    return SltdRecord(
        issuing_state=row[0],
        document_type=row[1],
        document_number=row[2],
        status=Status(row[3]),
        reporting_country=row[4],
        reported_on=dt.date.fromisoformat(str(row[5])),
        event_date=dt.date.fromisoformat(str(row[6])) if row[6] else None,
        reference=row[7],
    )


class SltdStore(ABC):
    """Port for an SLTD store. Backends are thread-safe: ``get`` may be called from any thread."""

    url: str
    #: The file holding the store when it is one (an index may then sit next to it);
    #: None for a store on a server.
    local_path: Path | None = None

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, *, create: bool = False) -> SltdStore:
        """Open the store at ``url`` (its scheme already chosen this backend); ``create``
        makes an empty store where there is none."""

    @property
    @abstractmethod
    def store_id(self) -> str:
        """A random id fixed at creation: an index built for another store is never reused."""

    @abstractmethod
    def version(self) -> int:
        """The list version: bumped by every committed change."""

    @abstractmethod
    def rebuild_version(self) -> int:
        """Version of the last unlogged bulk load; indexes older than it must be rebuilt."""

    @abstractmethod
    def get(self, issuing_state: str, document_type: str, number: str) -> SltdRecord | None:
        """The record listed under exactly this key, or None."""

    @abstractmethod
    def upsert(self, records: Iterable[SltdRecord]) -> int:
        """Add or replace records in one transaction (logged); returns how many."""

    @abstractmethod
    def remove(self, keys: Iterable[KeyTuple]) -> int:
        """Remove records in one transaction (logged); returns how many existed."""

    @abstractmethod
    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> int:
        """Load rows into an empty store fast (unlogged); returns how many."""

    @abstractmethod
    def key_snapshot(self) -> AbstractContextManager[tuple[int, Iterator[list[KeyTuple]]]]:
        """A consistent ``(version, batches of keys)`` view for building an index."""

    @abstractmethod
    def changes_since(self, version: int) -> tuple[int, list[Change]]:
        """``(current version, changes after version in commit order)``.

        Raises :class:`StaleChangeLog` if ``version`` predates ``rebuild_version``.
        """

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def stats(self, top: int = 10) -> dict[str, Any]:
        """Counts by status, document type and (top) issuing states, plus version and size."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> SltdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
