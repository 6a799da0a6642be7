"""The region's registry: a directory holding the CA, the regional keys and a SQLite file.

Layout (all private keys 0600, the directory 0700)::

    REGISTRY/registry.sqlite     terminals, certificates, identity keys, broker directories
    REGISTRY/ca/root.crt|key     offline root (move root.key off the laptop after init)
    REGISTRY/ca/issuing.crt|key  issuing intermediate: signs terminals, broker, CRL
    REGISTRY/ca/chain.crt        issuing + root: the ca.crt every peer trusts
    REGISTRY/ca/crl.pem          the current CRL
    REGISTRY/region/...          broker and regional TLS identities, regional protocol keys

SQLite holds no private key; it holds terminal audit keys (symmetric, see docs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import ConfigError, SetupError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
#: Identities that are not terminals; a terminal may not take these names.
RESERVED_IDS = frozenset({"regional", "broker", "alert-desk", "alert-console", "broker-admin"})
DB_FILE = "registry.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS terminals (
    id TEXT PRIMARY KEY, site TEXT, created TEXT NOT NULL, revoked_at TEXT,
    audit_key TEXT NOT NULL, bundle_path TEXT);
CREATE TABLE IF NOT EXISTS certs (
    serial TEXT PRIMARY KEY, subject TEXT NOT NULL, pem TEXT NOT NULL,
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, issued TEXT NOT NULL,
    revoke_after TEXT, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS identity_keys (
    terminal_id TEXT NOT NULL, public_b64 TEXT NOT NULL, created TEXT NOT NULL,
    not_after TEXT, PRIMARY KEY (terminal_id, public_b64));
CREATE TABLE IF NOT EXISTS deployments (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT, created TEXT NOT NULL);
"""


def check_name(value: str, what: str) -> str:
    """Validate a terminal id, region or site name; the error says what is allowed."""
    if not NAME_RE.match(value or ""):
        bad = next((i for i, c in enumerate(value) if not re.match(r"[a-z0-9-]", c)), None)
        where = f" (character {bad + 1}, {value[bad]!r})" if bad is not None else ""
        raise ConfigError(
            f"{value!r} is not a valid {what}{where}: use 1-63 lowercase letters, digits and "
            f"'-', starting with a letter or digit, e.g. 'kiosk-001'",
            field=what,
        )
    return value


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(s: str | None) -> dt.datetime | None:
    if s is None:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Terminal:
    id: str
    site: str | None
    created: dt.datetime
    revoked_at: dt.datetime | None
    audit_key: str
    bundle_path: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class CertRecord:
    serial: int
    subject: str
    pem: str
    not_before: dt.datetime
    not_after: dt.datetime
    issued: dt.datetime
    revoke_after: dt.datetime | None
    revoked_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.revoke_after is not None:
            return "revoked (grace ended)" if now >= self.revoke_after else "grace"
        if now >= self.not_after:
            return "expired"
        return "active"

    def in_crl(self, now: dt.datetime) -> bool:
        return self.revoked_at is not None or (
            self.revoke_after is not None and now >= self.revoke_after
        )


@dataclass(frozen=True)
class IdentityKey:
    terminal_id: str
    public_b64: str
    created: dt.datetime
    not_after: dt.datetime | None


@dataclass(frozen=True)
class Deployment:
    path: Path
    kind: str  # "regional" or "site"
    site: str | None


class Registry:
    """Access to one region's registry directory. Use as a context manager."""

    def __init__(self, directory: Path, conn: sqlite3.Connection):
        self.dir = directory
        self.conn = conn

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path) -> Registry:
        directory = Path(directory).resolve()
        if (directory / DB_FILE).exists():
            raise SetupError(
                f"{directory} already holds a registry: use it, or pick another --registry "
                "directory for a new region"
            )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        for sub in ("ca", "region"):
            (directory / sub).mkdir(mode=0o700, exist_ok=True)
        reg = cls._connect(directory)
        reg.conn.executescript(SCHEMA)
        reg.conn.commit()
        return reg

    @classmethod
    def open(cls, directory: Path) -> Registry:
        directory = Path(directory).resolve()
        if not (directory / DB_FILE).exists():
            raise SetupError(
                f"no registry in {directory}: run 'fieldterm provision --registry {directory} "
                "init --region NAME' first, or point --registry / FIELDTERM_REGISTRY at it"
            )
        return cls._connect(directory)

    @classmethod
    def _connect(cls, directory: Path) -> Registry:
        db = directory / DB_FILE
        # Created 0600 before SQLite opens it: its -wal/-shm files copy the mode.
        os.close(os.open(db, os.O_CREAT | os.O_RDWR, 0o600))
        db.chmod(0o600)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return cls(directory, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: a failure anywhere inside leaves the registry as it was."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    # -- meta --------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    @property
    def region(self) -> str:
        return self.get("region") or ""

    # -- terminals ---------------------------------------------------------------------
    def add_terminal(self, t: Terminal) -> None:
        self.conn.execute(
            "INSERT INTO terminals VALUES (?, ?, ?, ?, ?, ?)",
            (t.id, t.site, iso(t.created), None, t.audit_key, t.bundle_path),
        )

    def set_bundle_path(self, terminal_id: str, path: str) -> None:
        self.conn.execute("UPDATE terminals SET bundle_path=? WHERE id=?", (path, terminal_id))

    def mark_revoked(self, terminal_id: str, when: dt.datetime) -> None:
        self.conn.execute("UPDATE terminals SET revoked_at=? WHERE id=?", (iso(when), terminal_id))

    def terminal(self, terminal_id: str) -> Terminal | None:
        row = self.conn.execute("SELECT * FROM terminals WHERE id=?", (terminal_id,)).fetchone()
        return _terminal(row) if row else None

    def terminals(self) -> list[Terminal]:
        return [_terminal(r) for r in self.conn.execute("SELECT * FROM terminals ORDER BY id")]

    # -- certificates ------------------------------------------------------------------
    def add_cert(self, c: CertRecord) -> None:
        self.conn.execute(
            "INSERT INTO certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                format(c.serial, "x"),
                c.subject,
                c.pem,
                iso(c.not_before),
                iso(c.not_after),
                iso(c.issued),
                None,
                None,
            ),
        )

    def certs(self, subject: str | None = None) -> list[CertRecord]:
        q = "SELECT * FROM certs"
        args: tuple[str, ...] = ()
        if subject is not None:
            q, args = q + " WHERE subject=?", (subject,)
        return [_cert(r) for r in self.conn.execute(q + " ORDER BY rowid", args)]

    def revoke_cert(self, serial: int, when: dt.datetime) -> None:
        self.conn.execute(
            "UPDATE certs SET revoked_at=? WHERE serial=? AND revoked_at IS NULL",
            (iso(when), format(serial, "x")),
        )

    def revoke_cert_after(self, serial: int, when: dt.datetime) -> None:
        self.conn.execute(
            "UPDATE certs SET revoke_after=? WHERE serial=?", (iso(when), format(serial, "x"))
        )

    # -- identity keys -----------------------------------------------------------------
    def add_key(self, k: IdentityKey) -> None:
        self.conn.execute(
            "INSERT INTO identity_keys VALUES (?, ?, ?, ?)",
            (
                k.terminal_id,
                k.public_b64,
                iso(k.created),
                iso(k.not_after) if k.not_after else None,
            ),
        )

    def expire_keys(self, terminal_id: str, not_after: dt.datetime) -> None:
        """Give every open-ended key of a terminal an end (rotation)."""
        self.conn.execute(
            "UPDATE identity_keys SET not_after=? WHERE terminal_id=? AND not_after IS NULL",
            (iso(not_after), terminal_id),
        )

    def keys(self, terminal_id: str) -> list[IdentityKey]:
        rows = self.conn.execute(
            "SELECT * FROM identity_keys WHERE terminal_id=? ORDER BY rowid DESC",
            (terminal_id,),
        )
        return [
            IdentityKey(r[0], r[1], _dt(r[2]), parse_iso(r[3]))
            for r in rows  # newest first
        ]

    # -- broker directories ------------------------------------------------------------
    def add_deployment(self, d: Deployment, when: dt.datetime) -> None:
        self.conn.execute(
            "INSERT INTO deployments VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
            "kind=excluded.kind, site=excluded.site",
            (str(d.path), d.kind, d.site, iso(when)),
        )

    def deployments(self) -> list[Deployment]:
        rows = self.conn.execute("SELECT path, kind, site FROM deployments ORDER BY created")
        return [Deployment(Path(r[0]), r[1], r[2]) for r in rows]


def _dt(s: str) -> dt.datetime:
    v = parse_iso(s)
    assert v is not None
    return v


def _terminal(r: tuple[str, ...]) -> Terminal:
    return Terminal(r[0], r[1], _dt(r[2]), parse_iso(r[3]), r[4], r[5])


def _cert(r: tuple[str, ...]) -> CertRecord:
    return CertRecord(
        int(r[0], 16),
        r[1],
        r[2],
        _dt(r[3]),
        _dt(r[4]),
        _dt(r[5]),
        parse_iso(r[6]),
        parse_iso(r[7]),
    )
