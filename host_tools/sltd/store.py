"""Open the SLTD store, the system of record behind the query-path index, by URL.

The URL's scheme picks the backend from :data:`STORES` (python-can style: scheme ->
``"module:Class"``, imported only when chosen): a SQLite file (a plain path or
``sqlite:///path``, the default) or PostgreSQL (``postgresql://...``; psycopg is imported
in :mod:`.pgstore` only). Every backend implements :class:`~.storebase.SltdStore`.

The names a caller needs are re-exported here, so ``from host_tools.sltd.store import
open_store, SltdStore, StaleChangeLog, SqliteStore`` keeps working.
"""

from __future__ import annotations

from pathlib import Path

from firmware.backend_table import BackendTable
from host_tools.sltd.sqlitestore import SqliteStore
from host_tools.sltd.storebase import (
    COLUMNS,
    Change,
    KeyTuple,
    Row,
    SltdStore,
    StaleChangeLog,
    record_to_row,
    row_to_record,
)

__all__ = [
    "COLUMNS",
    "STORES",
    "Change",
    "KeyTuple",
    "Row",
    "SltdStore",
    "SqliteStore",
    "StaleChangeLog",
    "open_store",
    "record_to_row",
    "row_to_record",
]

#: URL scheme -> store backend. A URL without ``scheme://`` is a SQLite path.
STORES: BackendTable[type[SltdStore]] = BackendTable(
    "regional.sltd_db",
    {
        "sqlite": "host_tools.sltd.sqlitestore:SqliteStore",
        "postgresql": "host_tools.sltd.pgstore:PgStore",
        "postgres": "host_tools.sltd.pgstore:PgStore",
    },
)


def store_scheme(url: str | Path) -> str:
    """The scheme of a store URL, lower case; ``sqlite`` for a plain path."""
    scheme, sep, _ = str(url).partition("://")
    return scheme.lower() if sep else "sqlite"


def open_store(
    url: str | Path, *, create: bool = False, setting: str = "regional.sltd_db"
) -> SltdStore:
    """Open a store by URL: a SQLite path (default), ``sqlite:///path`` or
    ``postgresql://...``. An unknown scheme is a :class:`~firmware.errors.ConfigError`
    naming ``setting`` (the config key or flag the URL came from) and the known schemes."""
    backend = STORES.load(store_scheme(url), setting=setting)
    return backend.from_url(str(url), create=create)
