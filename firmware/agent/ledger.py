"""The durable record of accepted scans: outbox rows and audit lines, in the order that
loses nothing.

- Accepting a document: the outbox row is committed (fsynced) first, then the audit line
  ``accepted``; only then may the query leave the terminal.
- A final verdict: the audit line ``verdict`` (fsynced) first, then the outbox row is
  removed. A verdict for a query with no outbox row, or one already audited, is a
  duplicate and writes nothing.
- ``unknown`` (the officer was told to check manually) is audited once per query.
- After a (re)start, a row whose verdict is already in the audit log is the trace of a
  crash between the two steps: :meth:`QueryLedger.restore` finishes the delete.
- An offline answer: recorded on the query's outbox row (durable), then audited
  ``offline``; :meth:`QueryLedger.offline_answers` gives them back after a restart.

The ledger holds document keys only as the outbox does; audit lines carry the keyed hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from firmware.agent.audit import AuditHead, AuditLog
from firmware.agent.outbox import OfflineMark, Outbox, OutboxEntry


class QueryLedger:
    """Outbox and audit log kept in step (see the module docstring). One thread only."""

    def __init__(
        self,
        outbox: Outbox,
        audit: AuditLog,
        *,
        dockey_make: Callable[[str, str, str], Any],
        dockey_hash: Callable[[Any], int],
        wall: Callable[[], float] = time.time,
    ):
        self.outbox = outbox
        self.audit = audit
        self._make_key = dockey_make
        self._hash = dockey_hash
        self._wall = wall
        self._unknown_audited: set[bytes] = set()

    # -- start ------------------------------------------------------------------------------
    def restore(self) -> list[tuple[bytes, int]]:
        """Settle half-done verdicts; ``(query_id, seq)`` of every query still pending."""
        restored = []
        for e in self.outbox.pending():
            if self.audit.has_verdict(e.query_id):
                # Crashed between the audit line and the outbox delete: finish the delete.
                self.outbox.resolve(e.query_id)
                continue
            restored.append((e.query_id, e.seq))
        return restored

    def started(self, pending: int) -> None:
        """Audit the start, with how many verdicts are still pending."""
        self.audit.append("start", outcome=f"pending={pending}")

    # -- documents --------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The scan number the next document will get (not yet used up)."""
        return self.outbox.next_seq()

    def rescan(self, reason: str) -> int:
        """A document that failed validation: use up its scan number, audit ``rescan``."""
        seq = self.outbox.bump_seq()
        self.audit.append("rescan", outcome=reason)
        return seq

    def accept(self, query_id: bytes, dk: Any) -> OutboxEntry:
        """Store the query durably, then audit ``accepted``; only then may it be sent."""
        key = (dk.issuing_state, dk.category, dk.number)
        entry = self.outbox.add(query_id, key, self._wall())
        self.audit.append("accepted", query_id=query_id, dkh=self._hash(dk))
        return entry

    # -- verdicts ---------------------------------------------------------------------------
    def settle(self, query_id: bytes, outcome: str, list_version: str | None) -> OutboxEntry | None:
        """Record a final verdict (audit, then outbox delete); None if it is a duplicate."""
        entry = self.outbox.get(query_id)
        if entry is None or self.audit.has_verdict(query_id):
            return None
        self.audit.append(
            "verdict",
            query_id=query_id,
            dkh=self._hash(self.key_of(entry)),
            outcome=outcome,
            list_version=list_version,
        )
        self.outbox.resolve(query_id)
        return entry

    def unknown(self, query_id: bytes, reason: str | None) -> bool:
        """Audit ``unknown`` for a query, once; whether a line was written."""
        if query_id in self._unknown_audited:
            return False
        self._unknown_audited.add(query_id)
        self.audit.append("unknown", query_id=query_id, outcome=reason)
        return True

    def offline(
        self, query_id: bytes, outcome: str, list_version: int, list_age_s: float = 0.0
    ) -> None:
        """Record an answer from the offline list on the query's outbox row (so a restart
        remembers it), then audit it; the query stays in the outbox."""
        self.outbox.mark_offline(query_id, outcome == "LISTED", list_version, list_age_s)
        dk = self.key_for(query_id)
        self.audit.append(
            "offline",
            query_id=query_id,
            dkh=None if dk is None else self._hash(dk),
            outcome=outcome,
            list_version=str(list_version),
        )

    # -- reading ----------------------------------------------------------------------------
    def pending(self) -> list[OutboxEntry]:
        """Queries still waiting for a final verdict, oldest first."""
        return self.outbox.pending()

    def offline_answers(self) -> dict[bytes, OfflineMark]:
        """The offline answers of pending queries, by query id (after a restart)."""
        return self.outbox.offline_marks()

    def key_of(self, entry: OutboxEntry) -> Any:
        """The document key of a pending query (to seal it again)."""
        return self._make_key(*entry.key)

    def key_for(self, query_id: bytes) -> Any:
        """The document key of a pending query by id (None if it has no outbox row)."""
        entry = self.outbox.get(query_id)
        return None if entry is None else self.key_of(entry)

    def attempted(self, query_id: bytes) -> None:
        """Count one more sending attempt on the query's outbox row."""
        self.outbox.attempted(query_id)

    @property
    def head(self) -> AuditHead:
        """The audit log's chain head (for the status topic)."""
        return self.audit.head

    def __len__(self) -> int:
        return len(self.outbox)
