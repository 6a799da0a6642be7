"""Read the regional service's audit trail (host_tools/regional/audit.py) in tests: the
refusal of a query is proven by its ``REFUSED:<reason>`` row, never by a client timeout."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from host_tools.regional.config import RegionalConfig

WAIT = 20.0  # upper bound of every wait (never a timing assertion)


@dataclass(frozen=True)
class AuditRow:
    terminal: str
    query_id: bytes | None
    outcome: str


def audit_db(regional_toml: Path) -> Path:
    """The audit database a ``fieldterm regional --config regional_toml`` writes."""
    return RegionalConfig.load(regional_toml).audit_db


def audit_rows(db: Path, terminal: str | None = None) -> list[AuditRow]:
    """Every row in the order written (optionally of one terminal); [] before the first."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        con.execute("PRAGMA busy_timeout=5000")
        sql = "SELECT terminal, query_id, outcome FROM audit"
        args: tuple[str, ...] = ()
        if terminal is not None:
            sql, args = sql + " WHERE terminal = ?", (terminal,)
        rows = con.execute(sql + " ORDER BY rowid", args).fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        con.close()
    return [AuditRow(t, bytes(q) if q is not None else None, o) for t, q, o in rows]


def wait_rows(db: Path, terminal: str, count: int, limit: float = WAIT) -> list[AuditRow]:
    """Wait (bounded) until ``terminal`` has at least ``count`` rows; return them all."""
    end = time.monotonic() + limit
    while True:
        rows = audit_rows(db, terminal)
        if len(rows) >= count or time.monotonic() >= end:
            return rows
        time.sleep(0.05)
