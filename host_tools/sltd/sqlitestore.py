"""SQLite backend of the SLTD store (the default): a file in WAL mode; plain paths and
``sqlite:///path`` URLs. Same semantics as every backend (see :mod:`.storebase`)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from firmware.errors import OperationError, SetupError
from host_tools.sltd.records import SltdRecord
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records(
    issuing_state TEXT NOT NULL, document_type TEXT NOT NULL, document_number TEXT NOT NULL,
    status TEXT NOT NULL, reporting_country TEXT NOT NULL, reported_on TEXT NOT NULL,
    event_date TEXT, reference TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes(
    seq INTEGER PRIMARY KEY, version INTEGER NOT NULL, op TEXT NOT NULL,
    issuing_state TEXT NOT NULL, document_type TEXT NOT NULL, document_number TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_version ON changes(version);
"""
_KEY_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS records_key "
    "ON records(issuing_state, document_type, document_number)"
)
_UPSERT = (
    f"INSERT INTO records({', '.join(COLUMNS)}) VALUES (?,?,?,?,?,?,?,?) "  # noqa: S608
    "ON CONFLICT(issuing_state, document_type, document_number) DO UPDATE SET "
    "status=excluded.status, reporting_country=excluded.reporting_country, "
    "reported_on=excluded.reported_on, event_date=excluded.event_date, "
    "reference=excluded.reference"
)
_GET = (
    f"SELECT {', '.join(COLUMNS)} FROM records "  # noqa: S608
    "WHERE issuing_state=? AND document_type=? AND document_number=?"
)


def _try_pragma(db: sqlite3.Connection, pragma: str) -> None:
    try:
        db.execute(pragma)
    except sqlite3.OperationalError:
        pass


class SqliteStore(SltdStore):
    """SQLite file store (WAL). One connection per reading thread, one writer connection."""

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = self.local_path = Path(path)
        self.url = str(self.path)
        if not create and not self.path.exists():
            raise SetupError(f"SLTD store not found: {self.path} (run 'fieldterm sltd generate')")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self._closed = False
        try:
            db = self._conn()
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA + _KEY_INDEX + ";")
            if self._meta(db, "store_id") is None:
                with db:
                    db.executemany(
                        "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                        [("store_id", uuid.uuid4().hex), ("version", "0"), ("rebuild", "0")],
                    )
        except sqlite3.DatabaseError as exc:
            raise SetupError(f"{self.path}: not a usable SLTD store: {exc}") from exc
        self._id = str(self._meta(db, "store_id"))

    @classmethod
    def from_url(cls, url: str, *, create: bool = False) -> SqliteStore:
        """A plain path, or ``sqlite:///path`` (which names the absolute ``/path``)."""
        _, sep, path = url.partition("://")
        return cls(path if sep else url, create=create)

    def _conn(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise OperationError("SLTD store is closed")
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._lock:
                self._conns.append(db)
        return db

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def store_id(self) -> str:
        return self._id

    def version(self) -> int:
        return int(self._meta(self._conn(), "version") or 0)

    def rebuild_version(self) -> int:
        return int(self._meta(self._conn(), "rebuild") or 0)

    def get(self, issuing_state: str, document_type: str, number: str) -> SltdRecord | None:
        row = self._conn().execute(_GET, (issuing_state, document_type, number)).fetchone()
        return None if row is None else row_to_record(row)

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """One IMMEDIATE transaction that bumps the version; rolled back on any error."""
        with self._wlock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                version = int(self._meta(db, "version") or 0) + 1
                yield db, version
                db.execute("UPDATE meta SET v=? WHERE k='version'", (str(version),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def upsert(self, records: Iterable[SltdRecord]) -> int:
        rows = [record_to_row(r) for r in records]
        if not rows:
            return 0
        with self._write() as (db, version):
            db.executemany(_UPSERT, rows)
            db.executemany(
                "INSERT INTO changes(version, op, issuing_state, document_type, document_number) "
                "VALUES (?, 'A', ?, ?, ?)",
                [(version, r[0], r[1], r[2]) for r in rows],
            )
        return len(rows)

    def remove(self, keys: Iterable[KeyTuple]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        removed = 0
        with self._write() as (db, version):
            for k in keys:
                cur = db.execute(
                    "DELETE FROM records WHERE issuing_state=? AND document_type=? "
                    "AND document_number=?",
                    k,
                )
                if cur.rowcount:
                    removed += 1
                    db.execute(
                        "INSERT INTO changes(version, op, issuing_state, document_type, "
                        "document_number) VALUES (?, 'R', ?, ?, ?)",
                        (version, *k),
                    )
        return removed

    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> int:
        """Fast unlogged load into an empty store (the unique key index is built at the end)."""
        with self._wlock:
            db = self._conn()
            if db.execute("SELECT 1 FROM records LIMIT 1").fetchone():
                raise OperationError(f"{self.path}: bulk load needs an empty store")
            db.execute("DROP INDEX IF EXISTS records_key")
            # A rollback journal costs nothing for pages appended to an empty table, while
            # WAL would copy every page once more; back to WAL when done. Only possible
            # when nobody else has the file open (the generator's case); else stay in WAL.
            _try_pragma(db, "PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-262144")  # 256 MiB for the index sort
            db.execute("PRAGMA threads=2")  # helper threads for the sort
            n = 0
            db.execute("BEGIN")
            try:
                for batch in batches:
                    db.executemany(
                        f"INSERT INTO records({', '.join(COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)",  # noqa: S608
                        batch,
                    )
                    n += len(batch)
                db.execute(_KEY_INDEX)
                version = int(self._meta(db, "version") or 0) + 1
                db.execute("UPDATE meta SET v=? WHERE k='version'", (str(version),))
                db.execute("UPDATE meta SET v=? WHERE k='rebuild'", (str(version),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                db.execute(_KEY_INDEX)
                raise
            finally:
                db.execute("PRAGMA synchronous=NORMAL")
                _try_pragma(db, "PRAGMA journal_mode=WAL")
            return n

    @contextmanager
    def key_snapshot(self, batch: int = 65536) -> Iterator[tuple[int, Iterator[list[KeyTuple]]]]:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            db.execute("BEGIN")  # WAL read snapshot starts at the first read, below
            version = int(self._meta(db, "version") or 0)
            cur = db.execute("SELECT issuing_state, document_type, document_number FROM records")

            def batches() -> Iterator[list[KeyTuple]]:
                while rows := cur.fetchmany(batch):
                    yield rows

            yield version, batches()
            db.execute("COMMIT")
        finally:
            db.close()

    def changes_since(self, version: int) -> tuple[int, list[Change]]:
        db = self._conn()
        db.execute("BEGIN")
        try:
            current = int(self._meta(db, "version") or 0)
            if version < int(self._meta(db, "rebuild") or 0):
                raise StaleChangeLog(f"changes since version {version} were bulk-loaded")
            rows = db.execute(
                "SELECT op, issuing_state, document_type, document_number FROM changes "
                "WHERE version > ? ORDER BY seq",
                (version,),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        return current, [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM records").fetchone()[0])

    def stats(self, top: int = 10) -> dict[str, Any]:
        db = self._conn()

        def grouped(col: str, limit: int | None = None) -> dict[str, int]:
            sql = f"SELECT {col}, count(*) AS n FROM records GROUP BY {col} ORDER BY n DESC"  # noqa: S608
            if limit:
                sql += f" LIMIT {int(limit)}"
            return {str(k): int(n) for k, n in db.execute(sql)}

        return {
            "store": str(self.path),
            "records": self.count(),
            "list_version": self.version(),
            "by_status": grouped("status"),
            "by_document_type": grouped("document_type"),
            "issuing_states": int(
                db.execute("SELECT count(DISTINCT issuing_state) FROM records").fetchone()[0]
            ),
            "top_issuing_states": grouped("issuing_state", top),
            "size_bytes": sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            ),
        }

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for db in conns:
            db.close()
