"""PostgreSQL backend of the SLTD store (``postgresql://`` URLs). psycopg is imported here only.

Same schema and semantics as the SQLite store: ``sltd_records`` keyed by (issuing_state,
document_type, document_number), ``sltd_changes`` for the delta log, ``sltd_meta`` for the
store id, list version and rebuild version. Version bumps take a row lock on the meta
row, so concurrent writers serialise and change logs stay in commit order.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

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
CREATE TABLE IF NOT EXISTS sltd_meta(k text PRIMARY KEY, v text NOT NULL);
CREATE TABLE IF NOT EXISTS sltd_records(
    issuing_state text NOT NULL, document_type text NOT NULL, document_number text NOT NULL,
    status text NOT NULL, reporting_country text NOT NULL, reported_on date NOT NULL,
    event_date date, reference text NOT NULL,
    PRIMARY KEY (issuing_state, document_type, document_number));
CREATE TABLE IF NOT EXISTS sltd_changes(
    seq bigserial PRIMARY KEY, version bigint NOT NULL, op char(1) NOT NULL,
    issuing_state text NOT NULL, document_type text NOT NULL, document_number text NOT NULL);
CREATE INDEX IF NOT EXISTS sltd_changes_version ON sltd_changes(version);
"""
_COLS = ", ".join(COLUMNS)
T = TypeVar("T")


class PgStore(SltdStore):
    """PostgreSQL store; one autocommit connection per thread.

    A connection the server dropped (a restart, a failover, an idle timeout) is replaced:
    a read that fails on it is retried once on a new connection, and any call after a
    failed write opens a new one. Without that, a regional whose PostgreSQL was
    restarted answered ERROR to every hit for ever (``fieldterm chaos --store pg``).
    """

    def __init__(self, url: str, *, create: bool = False):
        import psycopg  # noqa: PLC0415

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        try:
            db = self._conn()
            #: A streaming replica (hot standby) is read-only: lookups and the index read
            #: its copy of the primary's tables; the schema and every write belong to the
            #: primary. Writes on a replica fail with PostgreSQL's own read-only error.
            self.replica = bool(db.execute("SELECT pg_is_in_recovery()").fetchone()[0])
            if self.replica:
                self._id = self._meta(db, "store_id")
                return
            with db.transaction():
                db.execute(_SCHEMA)
                db.execute(
                    "INSERT INTO sltd_meta VALUES ('store_id', %s), ('version', '0'), "
                    "('rebuild', '0') ON CONFLICT DO NOTHING",
                    (uuid.uuid4().hex,),
                )
        except psycopg.Error as exc:
            raise SetupError(f"PostgreSQL SLTD store unusable: {exc}") from exc
        self._id = self._meta(db, "store_id")

    @classmethod
    def from_url(cls, url: str, *, create: bool = False) -> PgStore:
        """A ``postgresql://`` (or ``postgres://``) URL, as libpq takes it."""
        return cls(url, create=create)

    def _conn(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is not None and db.closed:  # the server ended it: start again
            self._drop()
            db = None
        if db is None:
            try:
                db = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.Error as exc:
                raise OperationError(f"cannot connect to the SLTD store: {exc}") from exc
            self._local.db = db
            with self._lock:
                self._conns.append(db)
        return db

    def _drop(self) -> None:
        """Forget this thread's connection (closing it if it is not closed yet)."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with self._lock:
                if db in self._conns:
                    self._conns.remove(db)
            with contextlib.suppress(Exception):
                db.close()

    def _read(self, fn: Callable[[Any], T]) -> T:
        """``fn(connection)``, retried once on a new connection if the server dropped the
        old one (reads only: a write is never repeated, its outcome may be unknown)."""
        try:
            return fn(self._conn())
        except self._psycopg.OperationalError:
            self._drop()
            return fn(self._conn())

    @staticmethod
    def _meta(db: Any, key: str, lock: bool = False) -> str:
        sql = "SELECT v FROM sltd_meta WHERE k=%s" + (" FOR UPDATE" if lock else "")  # noqa: S608
        return str(db.execute(sql, (key,)).fetchone()[0])

    @property
    def store_id(self) -> str:
        return self._id

    def version(self) -> int:
        return int(self._read(lambda db: self._meta(db, "version")))

    def rebuild_version(self) -> int:
        return int(self._read(lambda db: self._meta(db, "rebuild")))

    def get(self, issuing_state: str, document_type: str, number: str) -> SltdRecord | None:
        row = self._read(
            lambda db: db.execute(
                f"SELECT {_COLS} FROM sltd_records WHERE issuing_state=%s AND document_type=%s "  # noqa: S608
                "AND document_number=%s",
                (issuing_state, document_type, number),
                prepare=True,
            ).fetchone()
        )
        return None if row is None else row_to_record(row)

    @contextmanager
    def _write(self) -> Iterator[tuple[Any, int]]:
        db = self._conn()
        with self._wlock, db.transaction():
            version = int(self._meta(db, "version", lock=True)) + 1
            yield db, version
            db.execute("UPDATE sltd_meta SET v=%s WHERE k='version'", (str(version),))

    def upsert(self, records: Iterable[SltdRecord]) -> int:
        rows = [record_to_row(r) for r in records]
        if not rows:
            return 0
        with self._write() as (db, version), db.cursor() as cur:
            cur.executemany(
                f"INSERT INTO sltd_records({_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "  # noqa: S608
                "ON CONFLICT (issuing_state, document_type, document_number) DO UPDATE SET "
                "status=excluded.status, reporting_country=excluded.reporting_country, "
                "reported_on=excluded.reported_on, event_date=excluded.event_date, "
                "reference=excluded.reference",
                rows,
            )
            cur.executemany(
                "INSERT INTO sltd_changes(version, op, issuing_state, document_type, "
                "document_number) VALUES (%s, 'A', %s, %s, %s)",
                [(version, r[0], r[1], r[2]) for r in rows],
            )
        return len(rows)

    def remove(self, keys: Iterable[KeyTuple]) -> int:
        keys = list(keys)
        n = 0
        if not keys:
            return 0
        with self._write() as (db, version):
            for k in keys:
                cur = db.execute(
                    "DELETE FROM sltd_records WHERE issuing_state=%s AND document_type=%s "
                    "AND document_number=%s",
                    k,
                )
                if cur.rowcount:
                    n += 1
                    db.execute(
                        "INSERT INTO sltd_changes(version, op, issuing_state, document_type, "
                        "document_number) VALUES (%s, 'R', %s, %s, %s)",
                        (version, *k),
                    )
        return n

    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> int:
        db = self._conn()
        n = 0
        with self._wlock, db.transaction():
            if db.execute("SELECT 1 FROM sltd_records LIMIT 1").fetchone():
                raise OperationError("bulk load needs an empty store")
            version = int(self._meta(db, "version", lock=True)) + 1
            with db.cursor() as cur, cur.copy(f"COPY sltd_records({_COLS}) FROM STDIN") as cp:
                for batch in batches:
                    for row in batch:
                        cp.write_row(row)
                    n += len(batch)
            db.execute(
                "UPDATE sltd_meta SET v=%s WHERE k IN ('version', 'rebuild')", (str(version),)
            )
        return n

    @contextmanager
    def key_snapshot(self, batch: int = 65536) -> Iterator[tuple[int, Iterator[list[KeyTuple]]]]:
        psycopg = self._psycopg
        db = psycopg.connect(self.url)
        try:
            db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with db.transaction():
                version = int(self._meta(db, "version"))
                cur = db.cursor(name="sltd_keys")
                cur.execute(
                    "SELECT issuing_state, document_type, document_number FROM sltd_records"
                )

                def batches() -> Iterator[list[KeyTuple]]:
                    while rows := cur.fetchmany(batch):
                        yield rows

                yield version, batches()
                cur.close()
        finally:
            db.close()

    def changes_since(self, version: int) -> tuple[int, list[Change]]:
        return self._read(lambda db: self._changes_since(db, version))

    def _changes_since(self, db: Any, version: int) -> tuple[int, list[Change]]:
        with db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            current = int(self._meta(db, "version"))
            if version < int(self._meta(db, "rebuild")):
                raise StaleChangeLog(f"changes since version {version} were bulk-loaded")
            rows = db.execute(
                "SELECT op, issuing_state, document_type, document_number FROM sltd_changes "
                "WHERE version > %s ORDER BY seq",
                (version,),
            ).fetchall()
        return current, [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def count(self) -> int:
        return int(
            self._read(lambda db: db.execute("SELECT count(*) FROM sltd_records").fetchone()[0])
        )

    def stats(self, top: int = 10) -> dict[str, Any]:
        db = self._conn()

        def grouped(col: str, limit: int | None = None) -> dict[str, int]:
            sql = f"SELECT {col}, count(*) AS n FROM sltd_records GROUP BY {col} ORDER BY n DESC"  # noqa: S608
            if limit:
                sql += f" LIMIT {int(limit)}"
            return {str(k): int(n) for k, n in db.execute(sql)}

        return {
            "store": self.url.split("@")[-1],
            "records": self.count(),
            "list_version": self.version(),
            "by_status": grouped("status"),
            "by_document_type": grouped("document_type"),
            "issuing_states": int(
                db.execute("SELECT count(DISTINCT issuing_state) FROM sltd_records").fetchone()[0]
            ),
            "top_issuing_states": grouped("issuing_state", top),
            "size_bytes": int(
                db.execute("SELECT pg_total_relation_size('sltd_records')").fetchone()[0]
            ),
        }

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for db in conns:
            db.close()
