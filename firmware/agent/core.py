"""The agent's core: one thread turns scanner, verdict, link and button events into
outbox rows, audit lines, state changes and signals.

Every event arrives through :meth:`AgentCore.post` (thread-safe) and is handled in the
thread that runs :meth:`AgentCore.run_once` / :meth:`AgentCore.run`, so the state machine,
the outbox and the signals are only ever touched from one thread. Ports are small
protocols, so tests drive the core with recording fakes and an injected clock.

The order of work for an accepted document is the "nothing lost" rule:
outbox row committed (fsync) -> audit ``accepted`` -> state QUERYING -> send.
For a final verdict (NO_MATCH / POSSIBLE_MATCH): audit ``verdict`` (fsync) -> outbox row
removed -> state. A second verdict for the same query id finds no outbox row and no new
audit line is written: no duplicate verdict. ``TIMEOUT`` and ``ERROR`` are not final: the
screen says UNKNOWN and the query stays in the outbox, to be re-sent with the same id
when the link returns and every ``retry_interval`` while it is up.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from firmware.agent.audit import AuditLog
from firmware.agent.events import EventLog
from firmware.agent.outbox import Outbox
from firmware.agent.states import POSSIBLE_MATCH, UNKNOWN, TerminalStateMachine, Transition, View

log = logging.getLogger(__name__)

FINAL_OUTCOMES = ("NO_MATCH", "POSSIBLE_MATCH")


class QueryPort(Protocol):
    """The sealed-query client as the agent uses it."""

    def submit(self, query_id: bytes, dk: Any, on_verdict: Callable[[Any], None]) -> None: ...


class SignalsPort(Protocol):
    """LEDs, buzzer and display together: show a :class:`View`, animate, switch off."""

    def show(self, view: View, now: float) -> None: ...

    def update(self, now: float) -> None: ...

    def acknowledged(self) -> bool: ...

    def off(self) -> None: ...


class StatusPort(Protocol):
    def publish(self, info: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Ev:
    kind: str  # document, verdict, link, ack, stop
    value: Any = None


class AgentCore:
    """See the module docstring."""

    def __init__(
        self,
        *,
        machine: TerminalStateMachine,
        outbox: Outbox,
        audit: AuditLog,
        query: QueryPort,
        signals: SignalsPort,
        dockey_from_mrz: Callable[[Any], Any],
        dockey_make: Callable[[str, str, str], Any],
        dockey_hash: Callable[[Any], int],
        status: StatusPort | None = None,
        events: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retry_interval: float = 10.0,
        status_interval: float = 60.0,
        new_query_id: Callable[[], bytes] = lambda: os.urandom(16),
    ):
        self.machine = machine
        self.outbox = outbox
        self.audit = audit
        self.query = query
        self.signals = signals
        self.status = status
        self.events = events or EventLog(None)
        self._from_mrz = dockey_from_mrz
        self._make_key = dockey_make
        self._hash = dockey_hash
        self._clock = clock
        self._wall = wall
        self._new_qid = new_query_id
        self.retry_interval = retry_interval
        self.status_interval = status_interval
        self._q: queue.Queue[_Ev] = queue.Queue()
        self._in_flight: set[bytes] = set()
        self._unknown_audited: set[bytes] = set()
        self._last_retry = clock()
        self._last_status = float("-inf")
        self._shown: View | None = None
        self.counts = {"documents": 0, "refused": 0, "verdicts": 0, "duplicates": 0}

    # -- inputs (any thread) ----------------------------------------------------------------
    def post(self, kind: str, value: Any = None) -> None:
        self._q.put(_Ev(kind, value))

    def on_document(self, doc: Any) -> None:
        self.post("document", doc)

    def on_verdict(self, verdict: Any) -> None:
        self.post("verdict", verdict)

    def on_link(self, up: bool) -> None:
        self.post("link", up)

    # -- lifecycle --------------------------------------------------------------------------
    def restore(self) -> list[int]:
        """After a (re)start: settle half-done work and list pending scans for the officer."""
        restored = []
        for e in self.outbox.pending():
            if self.audit.has_verdict(e.query_id):
                # Crashed between the audit line and the outbox delete: finish the delete.
                self.outbox.resolve(e.query_id)
                continue
            restored.append((e.query_id, e.seq))
        self.machine.restored(restored)
        seqs = [s for _, s in restored]
        self.audit.append("start", outcome=f"pending={len(seqs)}")
        self.events.write("start", pending=seqs)
        if seqs:
            log.warning("verdicts still pending for scans %s: re-sending", seqs)
        self._render(force=True)
        return seqs

    def run_once(self, timeout: float = 0.05) -> bool:
        """Handle queued events (waiting up to ``timeout``), then time. False after stop."""
        try:
            ev: _Ev | None = self._q.get(timeout=timeout)
        except queue.Empty:
            ev = None
        while ev is not None:
            if ev.kind == "stop":
                return False
            self._handle(ev)
            try:
                ev = self._q.get_nowait()
            except queue.Empty:
                ev = None
        self._timers()
        return True

    def stop(self) -> None:
        self.post("stop")

    # -- handlers -------------------------------------------------------------------------
    def _handle(self, ev: _Ev) -> None:
        if ev.kind == "document":
            self._document(ev.value)
        elif ev.kind == "verdict":
            self._verdict(ev.value)
        elif ev.kind == "link":
            self._link(bool(ev.value))
        elif ev.kind == "ack":
            self._note(self.machine.acknowledge())
        self._render()

    def _document(self, doc: Any) -> None:
        mrz = doc.mrz
        seq = self.outbox.next_seq()
        if not self.machine.document_arrived(seq):
            self.counts["refused"] += 1
            self.events.write("refused", reason="possible match not acknowledged")
            log.warning("document refused: acknowledge the possible match first")
            return
        self.counts["documents"] += 1
        self._render()
        dk = None
        reason = None
        if not mrz.valid:
            reason = mrz.errors[0].code if mrz.errors else "invalid"
        else:
            try:
                dk = self._from_mrz(mrz)
            except (ValueError, TypeError) as exc:  # BadDataError is a ValueError
                reason = f"dockey:{type(exc).__name__}"
        if dk is None:
            seq = self.outbox.bump_seq()
            self.audit.append("rescan", outcome=str(reason))
            self._note(self.machine.document_invalid(str(reason)))
            self.events.write("document", seq=seq, valid=False, reason=reason)
            return
        qid = self._new_qid()
        key = (dk.issuing_state, dk.category, dk.number)
        entry = self.outbox.add(qid, key, self._wall())  # durable before anything leaves
        self.audit.append("accepted", query_id=qid, dkh=self._hash(dk))
        repaired = bool(getattr(mrz, "repaired", ()))
        self.events.write("document", seq=entry.seq, valid=True, qid=qid.hex(), repaired=repaired)
        self._note(self.machine.query_sent(qid))
        if self.machine.link_up:
            self._send(qid, dk)
        else:
            self._audit_unknown(qid)

    def _send(self, qid: bytes, dk: Any) -> None:
        self._in_flight.add(qid)
        self.outbox.attempted(qid)
        try:
            self.query.submit(qid, dk, self.on_verdict)
        except Exception as exc:
            self._in_flight.discard(qid)
            log.warning("query %s not sent: %s", qid.hex()[:8], exc)
            self._not_final(qid, "ERROR")

    def _verdict(self, v: Any) -> None:
        qid = bytes(v.query_id)
        outcome = str(v.outcome)
        self._in_flight.discard(qid)
        if outcome not in FINAL_OUTCOMES:
            self.events.write("attempt", qid=qid.hex(), outcome=outcome, reason=v.reason)
            self._not_final(qid, outcome)
            return
        entry = self.outbox.get(qid)
        if entry is None or self.audit.has_verdict(qid):
            self.counts["duplicates"] += 1
            self.events.write("duplicate", qid=qid.hex(), outcome=outcome)
            return
        key = self._make_key(*entry.key)
        version = None if v.list_version is None else str(v.list_version)
        self.audit.append(
            "verdict", query_id=qid, dkh=self._hash(key), outcome=outcome, list_version=version
        )
        self.outbox.resolve(qid)
        self.counts["verdicts"] += 1
        t = self.machine.verdict(qid, outcome, final=True)
        late = t.late if t is not None else False
        self.events.write(
            "verdict",
            seq=entry.seq,
            qid=qid.hex(),
            outcome=outcome,
            list_version=version,
            late=late,
            latency_s=getattr(v, "latency_s", None),
        )
        self._note(t)

    def _not_final(self, qid: bytes, outcome: str) -> None:
        """TIMEOUT/ERROR: the query stays pending; the screen may become UNKNOWN."""
        t = self.machine.verdict(qid, outcome, final=False)
        self._note(t)
        if t is not None and t.after == UNKNOWN:
            self._audit_unknown(qid)

    def _audit_unknown(self, qid: bytes) -> None:
        if qid not in self._unknown_audited:
            self._unknown_audited.add(qid)
            self.audit.append("unknown", query_id=qid, outcome=self.machine.reason)

    def _link(self, up: bool) -> None:
        was = self.machine.link_up
        t = self.machine.link(up)
        self._note(t)
        if t is not None and t.after == UNKNOWN and t.query_id is not None:
            self._audit_unknown(t.query_id)
        self.events.write("link", up=up)
        if up and not was:
            self._in_flight.clear()  # what was in flight over the old connection is lost
            self._retry(force=True)
            self._publish_status(force=True)

    # -- time -------------------------------------------------------------------------------
    def _timers(self) -> None:
        now = self._clock()
        t = self.machine.tick()
        self._note(t)
        if t is not None and t.after == UNKNOWN and t.query_id is not None:
            self._audit_unknown(t.query_id)
        if self.machine.link_up and now - self._last_retry >= self.retry_interval:
            self._retry()
        if now - self._last_status >= self.status_interval:
            self._publish_status()
        if self.signals.acknowledged():
            self._note(self.machine.acknowledge())
        self._render()
        self.signals.update(now)

    def _retry(self, force: bool = False) -> None:
        self._last_retry = self._clock()
        for e in self.outbox.pending():
            if e.query_id in self._in_flight:
                continue
            if not force and self.machine.current and self.machine.current.query_id == e.query_id:
                if self.machine.state != UNKNOWN:
                    continue
            self.events.write("resend", seq=e.seq, qid=e.query_id.hex())
            self._send(e.query_id, self._make_key(*e.key))

    def _publish_status(self, force: bool = False) -> None:
        self._last_status = self._clock()
        if self.status is None or not (self.machine.link_up or force):
            return
        head = self.audit.head
        try:
            self.status.publish(
                {
                    "pending": len(self.outbox),
                    "audit_head": {"seq": head.seq, "mac": head.mac},
                    "documents": self.counts["documents"],
                }
            )
        except Exception as exc:
            log.warning("status not published: %s", exc)

    # -- output -----------------------------------------------------------------------------
    def _note(self, t: Transition | None) -> None:
        if t is None:
            return
        log.info(
            "%s -> %s (%s)%s%s",
            t.before,
            t.after,
            t.cause,
            f" scan #{t.seq}" if t.seq is not None else "",
            " late" if t.late else "",
        )
        self.events.write(
            "state",
            before=t.before,
            after=t.after,
            cause=t.cause,
            seq=t.seq,
            qid=t.query_id.hex() if t.query_id else None,
            late=t.late,
            reason=self.machine.reason,
        )
        if t.after == POSSIBLE_MATCH and t.before != POSSIBLE_MATCH:
            log.warning("POSSIBLE MATCH on scan #%s: hold the document", t.seq)
        if t.after != t.before:
            self._publish_status()

    def _render(self, force: bool = False) -> None:
        view = self.machine.view()
        if force or view != self._shown:
            self._shown = view
            self.signals.show(view, self._clock())
