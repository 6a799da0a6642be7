"""CSV import into an SLTD store: validate everything first, then one transaction.

Header (first line; column order free, ``event_date`` optional)::

    issuing_state,document_type,document_number,status,reporting_country,reported_on,event_date,reference

- ``issuing_state`` / ``reporting_country``: ICAO code without fillers (``FRA``, ``D``).
- ``document_type``: a category letter (P, I, A, C, V) or an SLTD type name
  (``PASSPORT``, ``ID_CARD``, ``VISA``, ... see ``records.DOCUMENT_TYPES``).
- ``document_number``: 0-9 A-Z, up to 22 characters (``<`` fillers and spaces dropped).
- ``status``: STOLEN_BLANK, STOLEN, LOST, REVOKED, INVALIDATED (spaces allowed).
- dates: ``YYYY-MM-DD``; ``event_date`` may be empty.
- ``reference``: the reporting bureau's own case reference (printable ASCII, <= 64).

Errors name the file, line and column, never the value (it may be a document number).
Nothing is half-imported: either every row of every file is valid and committed, or
nothing changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

from firmware.errors import BadDataError
from host_tools.sltd.records import (
    RecordError,
    SltdRecord,
    category_for,
    parse_date,
    parse_status,
)
from host_tools.sltd.store import KeyTuple, SltdStore

REQUIRED = (
    "issuing_state",
    "document_type",
    "document_number",
    "status",
    "reporting_country",
    "reported_on",
    "reference",
)
OPTIONAL = ("event_date",)
KEY_COLUMNS = ("issuing_state", "document_type", "document_number")
HEADER = ",".join(REQUIRED[:6] + OPTIONAL + REQUIRED[6:])


class SltdImportError(BadDataError):
    """A bad CSV cell or line: ``source``, ``line`` (1-based), ``column`` (1-based or None)."""

    def __init__(self, source: str, line: int, column: int | None, name: str | None, detail: str):
        self.source = source
        self.line = line
        self.column = column
        self.column_name = name
        where = f"{source}: line {line}"
        if column is not None:
            where += f", column {column}" + (f" ({name})" if name else "")
        super().__init__(f"{where}: {detail}")


def _norm_code(text: str) -> str:
    return text.strip().upper().replace("<", "")


def _norm_number(text: str) -> str:
    return text.strip().upper().replace("<", "").replace(" ", "")


def _rows(
    source: str, text: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, tuple[int, str]]]]:
    """(line number, {column name: (1-based column, cell)}) per data row."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise SltdImportError(source, 1, None, None, "empty file (expected a header)") from None
    except csv.Error as exc:
        raise SltdImportError(source, 1, None, None, f"bad CSV: {exc}") from None
    names = [h.strip().lower() for h in header]
    for col, name in enumerate(names, 1):
        if name not in required and name not in optional:
            raise SltdImportError(source, 1, col, name, "unknown column in header")
        if names.index(name) != col - 1:
            raise SltdImportError(source, 1, col, name, "column appears twice in header")
    for name in required:
        if name not in names:
            raise SltdImportError(source, 1, None, None, f"header lacks column {name!r}")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SltdImportError(source, reader.line_num, None, None, f"bad CSV: {exc}") from None
        line = reader.line_num
        if not cells or cells == [""]:
            continue
        if len(cells) != len(names):
            raise SltdImportError(
                source,
                line,
                min(len(cells), len(names)) + (len(cells) > len(names)),
                None,
                f"{len(cells)} fields, header has {len(names)}",
            )
        for col, cell in enumerate(cells, 1):
            if not cell.isascii():
                raise SltdImportError(source, line, col, names[col - 1], "non-ASCII character")
        yield line, {n: (i + 1, c) for i, (n, c) in enumerate(zip(names, cells, strict=True))}


def _read(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SltdImportError(str(path), 1, None, None, f"not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise SltdImportError(str(path), 0, None, None, exc.strerror or str(exc)) from None


def parse_csv(source: str, text: str) -> Iterator[tuple[int, SltdRecord]]:
    """Parse one CSV text into records; raises :class:`SltdImportError` at the first defect."""
    for line, cells in _rows(source, text, REQUIRED, OPTIONAL):
        col_of = {name: col for name, (col, _) in cells.items()}
        val = {name: cell for name, (_, cell) in cells.items()}
        try:
            ev = val.get("event_date", "").strip()
            rec = SltdRecord(
                issuing_state=_norm_code(val["issuing_state"]),
                document_type=category_for(val["document_type"]),
                document_number=_norm_number(val["document_number"]),
                status=parse_status(val["status"]),
                reporting_country=_norm_code(val["reporting_country"]),
                reported_on=parse_date("reported_on", val["reported_on"]),
                event_date=parse_date("event_date", ev) if ev else None,
                reference=val["reference"].strip(),
            )
        except RecordError as exc:
            raise SltdImportError(
                source, line, col_of.get(exc.field), exc.field, exc.detail
            ) from None
        yield line, rec


def load_records(paths: Iterable[str | Path]) -> list[SltdRecord]:
    """Every record of every file, validated; a key listed twice is an error."""
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    out: list[SltdRecord] = []
    for p in paths:
        source, text = _read(Path(p))
        for line, rec in parse_csv(source, text):
            first = seen.get(rec.key_tuple)
            if first is not None:
                raise SltdImportError(
                    source,
                    line,
                    None,
                    None,
                    f"document listed twice (first at {first[0]} line {first[1]})",
                )
            seen[rec.key_tuple] = (source, line)
            out.append(rec)
    return out


def import_csv(store: SltdStore, paths: Iterable[str | Path]) -> int:
    """Validate all files, then add or replace their records in one transaction."""
    return store.upsert(load_records(paths))


def load_keys(paths: Iterable[str | Path]) -> list[KeyTuple]:
    """Keys from CSV files with at least issuing_state, document_type, document_number.

    Other columns of the import format are allowed and ignored, so an import file can be
    used to remove what it added.
    """
    out: list[KeyTuple] = []
    for p in paths:
        source, text = _read(Path(p))
        for line, cells in _rows(source, text, KEY_COLUMNS, REQUIRED + OPTIONAL):
            try:
                key = SltdRecord(
                    _norm_code(cells["issuing_state"][1]),
                    category_for(cells["document_type"][1]),
                    _norm_number(cells["document_number"][1]),
                    parse_status("LOST"),
                    "XXA",
                    parse_date("reported_on", "2000-01-01"),
                    "-",
                ).key_tuple
            except RecordError as exc:
                col = cells[exc.field][0] if exc.field in cells else None
                raise SltdImportError(source, line, col, exc.field, exc.detail) from None
            out.append(key)
    return out
