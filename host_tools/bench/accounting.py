"""Every query of ``bench regional`` accounted for, from both ends.

The terminals' side is a :class:`~host_tools.bench.loadgen.Tally` per system (what was
sent, answered, wrong); the regional's side is its final health file (``answered``,
``counts.refused``, ``refusals``, ``audited``) and its audit trail, read here directly:
one row per answered query and one ``REFUSED:<reason>`` row per refusal.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from host_tools.bench.loadgen import Tally
from host_tools.bench.sealed import SealedTally


def audit_rows(db: Path) -> tuple[int, int]:
    """(answered, refused) rows in the regional's audit trail."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)) as c:
        row = c.execute(
            "SELECT COALESCE(SUM(outcome NOT LIKE 'REFUSED:%'), 0),"
            " COALESCE(SUM(outcome LIKE 'REFUSED:%'), 0) FROM audit"
        ).fetchone()
    return int(row[0]), int(row[1])


def audited_when(db: Path, expect: Callable[[], int], within: float = 10.0) -> tuple[int, int]:
    """Audit rows once the answered ones equal ``expect()`` (the audit writer lingers a
    little before each batch), or as they are when ``within`` has passed."""
    deadline = time.monotonic() + within
    while True:
        rows = audit_rows(db)
        if rows[0] == expect() or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)  # polling the trail itself, not hoping it is written


def account(
    tallies: dict[str, Tally], health: dict[str, Any], audit: tuple[int, int] | None
) -> dict[str, Any]:
    """Every query of every system (``tallies`` by name; ``sealed`` a :class:`SealedTally`),
    checked against the regional's final ``health`` and its ``audit`` rows (answered,
    refused); ``failures`` lists each way it does not add up, ``valid`` says none does."""
    failures = []
    for name, t in tallies.items():
        if t.lost:
            failures.append(f"{name}: {t.lost} of {t.sent} queries got no answer (lost)")
        if t.wrong:
            failures.append(f"{name}: {t.wrong} answers were wrong")
    out: dict[str, Any] = {
        "lost": sum(t.lost for t in tallies.values()),
        "wrong": sum(t.wrong for t in tallies.values()),
    }
    st = tallies.get("sealed")
    if isinstance(st, SealedTally) and audit is not None:
        counts = health.get("counts") or {}
        out.update(
            sent=st.sent,
            answered=st.answered,
            timeouts=st.timeouts,
            late=st.late,
            outcomes=dict(sorted(st.outcomes.items())),
            refused=int(counts.get("refused", 0)),
            refusals=health.get("refusals") or {},
            audited=audit[0],
            audited_refusals=audit[1],
            regional_answered=health.get("answered"),
            regional_audited=health.get("audited"),
        )
        if not health:
            failures.append("sealed: the regional left no health file")
        if out["refused"]:
            failures.append(
                f"sealed: the regional refused {out['refused']} queries {out['refusals']}"
            )
        if out["refused"] != audit[1]:
            failures.append(
                f"sealed: the regional refused {out['refused']} queries, its trail holds "
                f"{audit[1]} refusals"
            )
        if st.late:
            failures.append(f"sealed: {st.late} answers came after the terminal's timeout")
        if audit[0] != st.answered:
            failures.append(
                f"sealed: {audit[0]} answered queries audited, but terminals got {st.answered}"
            )
        if health and health.get("answered") != st.answered:
            failures.append(
                f"sealed: the regional answered {health.get('answered')}, terminals got {st.answered}"
            )
        if health and health.get("audited") != audit[0] + audit[1]:
            failures.append(
                f"sealed: the regional reports {health.get('audited')} audit rows written, "
                f"its trail holds {audit[0] + audit[1]}"
            )
    out["failures"] = failures
    out["valid"] = not failures
    return out
