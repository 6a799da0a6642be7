"""The durable record of accepted scans: outbox rows and audit lines, in the order that
loses nothing.

- Accepting a document: the outbox row is committed (fsynced) first, then the audit line
  ``accepted``; only then may the query leave the terminal.
- A final verdict: the audit line ``verdict`` (fsynced) first (for a POSSIBLE_MATCH then
  a ``latched`` line with its scan number), then the outbox row is removed. A verdict for
  a query with no outbox row, or one already audited, is a duplicate and writes nothing.
- ``unknown`` (the officer was told to check manually) is audited once per query.
- After a (re)start, a row whose verdict is already in the audit log is the trace of a
  crash between the two steps: :meth:`QueryLedger.restore` finishes the delete (the log is
  searched only from the row's ``audit_seq`` on, so a start does not read the whole log).
- An offline answer: recorded on the query's outbox row (durable), then audited
  ``offline``; :meth:`QueryLedger.offline_answers` gives them back after a restart.

Nothing identifying is written (issue 13, part 4): the outbox row holds the document key
sealed to the regional (``sealer.seal``), and audit lines hold the query id only: no
keyed hash a holder of the card's audit key could brute-force back into a number (the
regional's audit maps query id to its keyed hash). The plain key of a query accepted by
this process is kept in memory only, for its sends and the offline list's answer, and
dropped with its verdict; after a restart a pending query is re-sent as its sealed box
(``sealer.ref``), which only the regional opens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from firmware.agent.audit import AuditHead, AuditLog
from firmware.agent.outbox import OfflineMark, Outbox, OutboxEntry
from firmware.errors import StorageError

log = logging.getLogger(__name__)


class KeySealer(Protocol):
    """Seals a document key to the regional (:class:`firmware.protocol.pending.PendingSealer`)."""

    def seal(self, query_id: bytes, dk: Any) -> bytes:
        """The inner box the outbox stores for this query."""
        ...

    def ref(self, box: bytes) -> Any:
        """A stored box as the query client re-sends it."""
        ...


class QueryLedger:
    """Outbox and audit log kept in step (see the module docstring). One thread only."""

    def __init__(
        self,
        outbox: Outbox,
        audit: AuditLog,
        *,
        sealer: KeySealer,
        wall: Callable[[], float] = time.time,
    ):
        self.outbox = outbox
        self.audit = audit
        self._sealer = sealer
        self._wall = wall
        self._unknown_audited: set[bytes] = set()
        #: Plain keys of queries accepted by this process, until their verdict (memory only).
        self._keys: dict[bytes, Any] = {}
        #: Verdicts audited whose outbox delete failed (so a second copy writes nothing).
        self._settled: set[bytes] = set()

    # -- start ------------------------------------------------------------------------------
    def restore(self) -> list[tuple[bytes, int]]:
        """Settle half-done verdicts; ``(query_id, seq)`` of every query still pending."""
        restored = []
        pending = self.outbox.pending()
        done = self.audit.verdicts_among({e.query_id: e.audit_seq for e in pending})
        for e in pending:
            if e.query_id in done:
                # Crashed between the audit line and the outbox delete: finish the delete.
                self.outbox.resolve(e.query_id)
                continue
            restored.append((e.query_id, e.seq))
        return restored

    def started(self, pending: int, latched: Sequence[tuple[bytes, int]] = ()) -> None:
        """Audit the start, with how many verdicts are still pending and the possible
        matches still latched (query id and scan number: the next start reads from here)."""
        text = f"pending={pending}"
        if latched:
            text += " latched=" + ",".join(f"{q.hex()}:{s}" for q, s in latched)
        self.audit.append("start", outcome=text)

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
        """Store the query durably, then audit ``accepted``; only then may it be sent.
        A :class:`~firmware.errors.StorageError` means the scan was not accepted."""
        sealed = self._sealer.seal(query_id, dk)
        entry = self.outbox.add(query_id, sealed, self._wall(), audit_seq=self.audit.head.seq)
        try:
            self.audit.append("accepted", query_id=query_id)
        except StorageError:
            # Not accepted after all (the officer is told): take the row back if we can;
            # if even that fails, the row stays pending and is answered like any other.
            try:
                self.outbox.resolve(query_id)
            except StorageError:
                self._keys[query_id] = dk
            raise
        self._keys[query_id] = dk
        return entry

    # -- verdicts ---------------------------------------------------------------------------
    def settle(self, query_id: bytes, outcome: str, list_version: str | None) -> OutboxEntry | None:
        """Record a final verdict (audit, then outbox delete); None if it is a duplicate."""
        entry = self.outbox.get(query_id)
        if entry is None or query_id in self._settled:
            self.finish_deletes()
            return None
        self.audit.append("verdict", query_id=query_id, outcome=outcome, list_version=list_version)
        self._settled.add(query_id)
        if outcome == "POSSIBLE_MATCH":  # latched until acknowledged, across restarts too
            try:
                self.audit.append("latched", query_id=query_id, outcome=f"scan={entry.seq}")
            except StorageError as exc:  # the verdict line alone still re-latches it
                log.warning("possible match latched without its scan number line: %s", exc)
        self._keys.pop(query_id, None)
        try:
            self.outbox.resolve(query_id)
        except StorageError as exc:
            # The verdict is durable in the audit log; the next start finishes the delete
            # (restore), and until then a second copy of the verdict writes nothing.
            log.warning("verdict recorded, outbox row kept until the next start: %s", exc)
            return entry
        self._settled.discard(query_id)
        return entry

    def finish_deletes(self) -> None:
        """Remove the outbox rows of verdicts already audited whose delete failed (a
        full card); those still failing wait for the next try or the next start."""
        for qid in sorted(self._settled):
            try:
                self.outbox.resolve(qid)
            except StorageError:
                return
            self._settled.discard(qid)

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
        self.audit.append(
            "offline", query_id=query_id, outcome=outcome, list_version=str(list_version)
        )

    # -- reading ----------------------------------------------------------------------------
    def pending(self) -> list[OutboxEntry]:
        """Queries still waiting for a final verdict, oldest first."""
        return self.outbox.pending()

    def offline_answers(self) -> dict[bytes, OfflineMark]:
        """The offline answers of pending queries, by query id (after a restart)."""
        return self.outbox.offline_marks()

    def key_of(self, entry: OutboxEntry) -> Any:
        """What to seal a pending query with: its plain key while this process holds it,
        else its sealed box (a resend only the regional can open)."""
        dk = self._keys.get(entry.query_id)
        return dk if dk is not None else self._sealer.ref(entry.sealed)

    def sealed_of(self, entry: OutboxEntry) -> Any:
        """A pending query's sealed box as the query client re-sends it (type ``0x53``),
        even while this process still holds its plain key: a resend after the officer was
        shown an answer, which the regional then knows is late."""
        return self._sealer.ref(entry.sealed)

    def key_for(self, query_id: bytes) -> Any:
        """The plain document key of a pending query accepted by this process (for the
        offline list); None otherwise (after a restart only the sealed box is left)."""
        return self._keys.get(query_id)

    def attempted(self, query_id: bytes) -> None:
        """Count one more sending attempt on the query's outbox row."""
        self.outbox.attempted(query_id)

    @property
    def head(self) -> AuditHead:
        """The audit log's chain head (for the status topic)."""
        return self.audit.head

    def __len__(self) -> int:
        return len(self.outbox)
