"""The agent's core: one thread turns scanner, verdict, link and button events into
outbox rows, audit lines, state changes and signals.

Every event arrives through :meth:`AgentCore.post` (thread-safe) and is handled in the
thread that runs :meth:`AgentCore.run_once` / :meth:`AgentCore.run`, so the state machine,
the outbox and the signals are only ever touched from one thread. Ports are small
protocols (:mod:`firmware.agent.ports`), so tests drive the core with recording fakes and
an injected clock.

The core is the composition of units with one job each:

- :class:`~firmware.agent.inbox.EventInbox`: events from any thread, in order;
- :func:`~firmware.agent.intake.check_scan`: a scanned MRZ to a document key, or a
  rescan reason;
- :class:`~firmware.agent.ledger.QueryLedger`: outbox rows and audit lines in the
  "nothing lost" order;
- :class:`~firmware.agent.dispatch.QueryDispatcher`: sending, and re-sending pending
  queries with the same id;
- :class:`~firmware.agent.presenter.StatePresenter`: transitions to logs and events,
  views to the signals;
- :class:`~firmware.agent.heartbeat.StatusHeartbeat`: the retained status;
- :class:`~firmware.agent.offline.OfflineVerdicts`: the offline list's answer where the
  online one is missing, and the list's health for the status and the idle screen.

The order of work for an accepted document is the "nothing lost" rule:
outbox row committed (fsync) -> audit ``accepted`` -> state QUERYING -> send.
For a final verdict (NO_MATCH / POSSIBLE_MATCH): audit ``verdict`` (fsync) -> outbox row
removed -> state. A second verdict for the same query id finds no outbox row and no new
audit line is written: no duplicate verdict. ``TIMEOUT`` and ``ERROR`` are not final: the
screen says UNKNOWN and the query stays in the outbox, to be re-sent with the same id
when the link returns and every ``retry_interval`` while it is up.

Offline answers (issue 12): where the screen would become UNKNOWN for the current query,
the state machine asks :meth:`OfflineVerdicts.lookup`. An answer from the list is audited
``offline`` (outcome ``LISTED``/``NOT_LISTED``, the list's version) and written to the
events file as an ``offline`` event (``"offline": true``, list version and age); the
query stays in the outbox and is re-sent like any pending one. Its online verdict is then
the ordinary ``verdict`` (audit line and event), whose event also names the offline answer
it follows (``offline_answer``) and whether it cleared an offline hit (``cleared``). The
offline answer is kept on the query's outbox row too, so :meth:`AgentCore.restore` gives
it back to the machine after a restart (the ``start`` event lists those scans as
``answered_offline``).

A possible match latches across a crash (issue 14): its verdict line (and a ``latched``
line with the scan number) is fsynced before it is shown, and the officer's acknowledgement
is audited (``acknowledged``) before the latch is released. :meth:`AgentCore.restore`
latches again every POSSIBLE_MATCH without an acknowledgement
(:meth:`~firmware.agent.audit.AuditLog.latched_matches`): the first on screen, the others
as sticky notices, each a ``relatched`` event. An offline hit (POSSIBLE MATCH from the
offline list) latches again the same way while its query is still pending and no
``acknowledged`` line names it (its answer is on the outbox row); its ``relatched`` event
says ``"offline": true``. An alarm raised while a match is latched does not hide it:
FAULT is shown once the match is acknowledged.

The audit anchor (issue 14): each query carries the audit log's head, and an answer
carries the head the regional held for this kiosk (``Verdict.anchor``). If the local log
has no line at that seq, or that line has another MAC, the log was cut, deleted or replaced
since: an alarm (FAULT, an ``alarm`` event, the status, an ``anchor`` audit line), raised
once per anchor; the scan's verdict itself is handled as usual.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from firmware.agent.audit import AuditLog
from firmware.agent.dispatch import QueryDispatcher
from firmware.agent.events import EventLog
from firmware.agent.heartbeat import StatusHeartbeat
from firmware.agent.inbox import AgentEvent, EventInbox
from firmware.agent.intake import check_scan
from firmware.agent.ledger import KeySealer, QueryLedger
from firmware.agent.offline import OfflineVerdicts, verdict_fields
from firmware.agent.outbox import Outbox
from firmware.agent.ports import OfflinePort, QueryPort, SignalsPort, StatusPort
from firmware.agent.presenter import StatePresenter
from firmware.agent.states import (
    IDLE,
    LATCHED,
    OFFLINE_STATES,
    QUERYING,
    READING,
    STORAGE_FULL,
    UNKNOWN,
    OfflineResult,
    TerminalStateMachine,
    Transition,
)
from firmware.agent.storage import StorageGuard
from firmware.errors import StorageError

__all__ = [
    "FINAL_OUTCOMES",
    "AgentCore",
    "OfflinePort",
    "QueryPort",
    "SignalsPort",
    "StatusPort",
]

log = logging.getLogger(__name__)

FINAL_OUTCOMES = ("NO_MATCH", "POSSIBLE_MATCH")
#: How often the idle screen's list age is refreshed (monotonic seconds).
LIST_REFRESH = 60.0
#: A clock offset from the regional's time hint at least this large (s) is shown to the
#: officer (smaller ones are inside the protocol window and need no notice).
CLOCK_NOTICE = 60.0


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
        sealer: KeySealer,
        status: StatusPort | None = None,
        events: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retry_interval: float = 10.0,
        status_interval: float = 60.0,
        new_query_id: Callable[[], bytes] = lambda: os.urandom(16),
        offline: OfflinePort | None = None,
        storage: StorageGuard | None = None,
    ):
        """``offline`` is the offline list's answerer (None: no offline-list key, so no
        offline answers: UNKNOWN as before). ``sealer`` seals each accepted document key
        to the regional for the outbox (:class:`~firmware.agent.ledger.KeySealer`).
        ``storage`` watches the state directory's free space (None: no checks)."""
        self.machine = machine
        self.outbox = outbox
        self.audit = audit
        self.query = query
        self.signals = signals
        self.status = status
        self.events = events or EventLog(None)
        self._from_mrz = dockey_from_mrz
        self._new_qid = new_query_id
        self.inbox = EventInbox()
        self.counts = {"documents": 0, "refused": 0, "verdicts": 0, "duplicates": 0}
        self.ledger = QueryLedger(outbox, audit, sealer=sealer, wall=wall)
        self.dispatcher = QueryDispatcher(
            query,
            self.ledger,
            on_verdict=self.on_verdict,
            on_failed=lambda qid: self._not_final(qid, "ERROR"),
            events=self.events,
            clock=clock,
            retry_interval=retry_interval,
        )
        self.presenter = StatePresenter(signals, self.events, clock)
        self.heartbeat = StatusHeartbeat(
            status, self._status_info, clock=clock, interval=status_interval
        )
        self.offline = OfflineVerdicts(offline, self.ledger, self.events)
        machine.offline_lookup = self.offline.lookup
        self._clock = clock
        self._list_shown_at = float("-inf")
        self.counts["offline"] = 0
        self.supervisor_seq: int | None = None  # the match a supervisor's panel acknowledged
        self.storage = storage or StorageGuard(None, clock=clock)
        #: Alarms raised at start (damaged files put aside, lost scans, a cut audit log):
        #: shown as FAULT, written as ``alarm`` events, and in the status.
        self.alarms: list[str] = []
        #: Alarms raised while a possible match was latched: FAULT after its acknowledgement.
        self._fault_after_ack: list[str] = []
        #: Anchors from the regional already compared with the local log.
        self._anchors_checked: set[tuple[int, str]] = set()

    @property
    def retry_interval(self) -> float:
        return self.dispatcher.retry_interval

    @property
    def status_interval(self) -> float:
        return self.heartbeat.interval

    # -- inputs (any thread) ----------------------------------------------------------------
    def post(self, kind: str, value: Any = None) -> None:
        """Queue an event (``document``, ``verdict``, ``link``, ``ack`` or ``stop``)."""
        self.inbox.post(kind, value)

    def on_document(self, doc: Any) -> None:
        self.post("document", doc)

    def on_verdict(self, verdict: Any) -> None:
        self.post("verdict", verdict)

    def on_link(self, up: bool) -> None:
        self.post("link", up)

    def on_clock(self, offset: float) -> None:
        """The query client adopted the regional's time: protocol time is ``offset`` s
        ahead of the kiosk clock (the clock notice; docs/time.md). Safe from any thread."""
        self.post("clock", offset)

    def on_list_installed(self, *_: Any) -> None:
        """A new offline list is installed (the answerer already reloaded): refresh the
        idle screen and the status. Safe from any thread."""
        self.post("list")

    def on_list_refused(self, reason: str, message: str) -> None:
        """The list download refused a manifest or a chunk (the old list stays in use):
        reported as a ``list_refused`` event and in the status. Safe from any thread."""
        self.post("list_refused", (reason, message))

    # -- lifecycle --------------------------------------------------------------------------
    def restore(self, alarms: list[str] = ()) -> list[int]:  # type: ignore[assignment]
        """After a (re)start: settle half-done work and list pending scans for the officer.
        ``alarms`` (what the stores found wrong at open, and the start-up cross-check)
        put the screen on FAULT until acknowledged (:meth:`raise_alarms`)."""
        rows = self.outbox.pending()  # before restore settles
        scan_of = {e.query_id: e.seq for e in rows}
        accepted_at = {e.query_id: e.audit_seq for e in rows}
        restored = self.ledger.restore()
        self.machine.restored(restored)
        pending = {qid for qid, _ in restored}
        answered = {q: r for q, r in self.offline.restored().items() if q in pending}
        self.machine.answered_offline.update(answered)
        self._refresh_list(force=True)
        seqs = [s for _, s in restored]
        latched = [
            (q, s if s is not None else scan_of.get(q, 0)) for q, s in self.audit.latched_matches()
        ]
        self.ledger.started(len(seqs), latched)
        offline_seqs = [s for q, s in restored if q in answered]
        self.events.write(
            "start", pending=seqs, answered_offline=offline_seqs, latched=[s for _, s in latched]
        )
        if seqs:
            log.warning("verdicts still pending for scans %s: re-sending", seqs)
        self._relatch(latched)
        hits = {q: accepted_at.get(q) for q, r in answered.items() if r.listed}
        released = self.audit.acknowledged_among(hits)
        self._relatch_offline(
            [(q, s) for q, s in restored if q in hits and q not in released], answered
        )
        self.raise_alarms(list(alarms))
        self._render(force=True)
        return seqs

    def _relatch(self, latched: list[tuple[bytes, int]]) -> None:
        """Latch again the possible matches no officer acknowledged before the restart."""
        for qid, seq in latched:
            log.warning("POSSIBLE MATCH on scan #%s not acknowledged before the restart", seq)
            self.events.write("relatched", seq=seq, qid=qid.hex())
            self.machine.restored([(qid, seq)])
            self._note(self.machine.verdict(qid, "POSSIBLE_MATCH", final=True))

    def _relatch_offline(
        self, hits: list[tuple[bytes, int]], answers: dict[bytes, OfflineResult]
    ) -> None:
        """Latch again the offline hits no officer acknowledged before the restart (their
        queries are pending: the online re-check goes on as for any pending scan)."""
        for qid, seq in hits:
            log.warning(
                "POSSIBLE MATCH (offline list) on scan #%s not acknowledged before the restart",
                seq,
            )
            self.events.write("relatched", seq=seq, qid=qid.hex(), offline=True)
            self._note(self.machine.relatch_offline(qid, seq, answers[qid]))

    def raise_alarms(self, alarms: list[str]) -> None:
        """Each alarm: an error in the log, an ``alarm`` event, the status; the screen
        shows FAULT ("check manually and call a technician") with the first one."""
        for text in alarms:
            log.error("ALARM: %s", text)
            self.events.write("alarm", message=text)
        self.alarms.extend(alarms)
        if alarms and self.machine.state in LATCHED:  # never hide a latched match
            self._fault_after_ack.extend(alarms)
        elif alarms:
            self._note(self.machine.fault(alarms[0]))

    def _acknowledge(self) -> None:
        """The officer's acknowledgement: audited for each possible match it releases
        (before the release, so a crash in between shows the match again), then FAULT
        for alarms held back while a match was latched."""
        m = self.machine
        if m.state in LATCHED and m.current is not None and m.current.query_id:
            released = [m.current.query_id]  # an offline hit too: not latched again
        elif m.state in LATCHED:
            released = []
        else:
            released = [n.query_id for n in m.notices if n.sticky]
        for qid in released:
            try:
                self.audit.append("acknowledged", query_id=qid)
            except StorageError as exc:  # the officer did acknowledge; a restart re-shows it
                log.error("acknowledgement not audited: %s", exc)
        self._note(m.acknowledge())
        if m.state == IDLE and self._fault_after_ack:
            self._note(m.fault(self._fault_after_ack[0]))
            self._fault_after_ack.clear()

    def run_once(self, timeout: float = 0.05) -> bool:
        """Handle queued events (waiting up to ``timeout``), then time. False after stop."""
        if not self.inbox.drain(self._guarded(self._handle), timeout):
            return False
        self._guarded(self._timers)()
        return True

    def _guarded(self, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn``, with a failed write to the card shown as STORAGE_FULL instead of
        ending the loop (a probe saw 8 crashes in 21 s on a full card)."""

        def run(*args: Any) -> None:
            try:
                fn(*args)
            except StorageError as exc:
                self._storage_failed(str(exc))

        return run

    def stop(self) -> None:
        self.post("stop")

    # -- handlers -------------------------------------------------------------------------
    def _handle(self, ev: AgentEvent) -> None:
        if ev.kind == "document":
            self._document(ev.value)
        elif ev.kind == "verdict":
            self._verdict(ev.value)
        elif ev.kind == "link":
            self._link(bool(ev.value))
        elif ev.kind == "ack":
            self._acknowledge()
        elif ev.kind == "clock":
            self._clock_offset(float(ev.value))
        elif ev.kind == "supervisor":  # a panel acknowledged this lane's call (firmware/lane)
            self.events.write("supervisor", panel=ev.value)
            self.supervisor_seq = self.machine.view().seq
        elif ev.kind == "list":
            self._refresh_list(force=True)
            self.events.write("list", **self.offline.status())
        elif ev.kind == "list_refused":  # the status goes out on its own schedule
            reason, message = ev.value
            status = self.offline.status()
            self.events.write("list_refused", reason=reason, message=message, offline_list=status)
        self._render()

    def _document(self, doc: Any) -> None:
        mrz = doc.mrz
        if not self.machine.document_arrived(self.ledger.next_seq()):
            self.counts["refused"] += 1
            self.events.write("refused", reason="possible match not acknowledged")
            log.warning("document refused: acknowledge the possible match first")
            return
        self.counts["documents"] += 1
        self._render()
        short = self.storage.shortage()
        if short is not None:
            raise StorageError(f"storage full: {short}")
        scan = check_scan(mrz, self._from_mrz)
        if not scan.usable:
            reason = str(scan.reason)
            seq = self.ledger.rescan(reason)
            self._note(self.machine.document_invalid(reason))
            self.events.write("document", seq=seq, valid=False, reason=scan.reason)
            return
        qid = self._new_qid()
        try:
            entry = self.ledger.accept(qid, scan.key)  # durable before anything leaves
        except StorageError:
            kept = self.ledger.outbox.get(qid)
            if kept is not None:  # the row could not be taken back: it stays pending
                self.machine.restored([(qid, kept.seq)])
            raise
        repaired = bool(getattr(mrz, "repaired", ()))
        self.events.write("document", seq=entry.seq, valid=True, qid=qid.hex(), repaired=repaired)
        self._note_fallback(self.machine.query_sent(qid))
        if self.machine.link_up:
            self.dispatcher.send(qid, scan.key)

    def _verdict(self, v: Any) -> None:
        qid = bytes(v.query_id)
        outcome = str(v.outcome)
        self.dispatcher.answered(qid)
        self._check_anchor(getattr(v, "anchor", None))
        if outcome not in FINAL_OUTCOMES:
            self.events.write("attempt", qid=qid.hex(), outcome=outcome, reason=v.reason)
            self._not_final(qid, outcome)
            return
        version = None if v.list_version is None else str(v.list_version)
        offline_before = self.machine.answered_offline.get(qid)
        entry = self.ledger.settle(qid, outcome, version)
        if entry is None:
            self.counts["duplicates"] += 1
            self.events.write("duplicate", qid=qid.hex(), outcome=outcome)
            return
        self.counts["verdicts"] += 1
        t = self.machine.verdict(qid, outcome, final=True)
        self.events.write(
            "verdict",
            seq=entry.seq,
            qid=qid.hex(),
            outcome=outcome,
            list_version=version,
            late=t.late if t is not None else False,
            latency_s=getattr(v, "latency_s", None),
            **verdict_fields(offline_before, outcome),
        )
        self._note(t)

    def _check_anchor(self, anchor: tuple[int, str] | None) -> None:
        """Compare the regional's record of this log's head with the log (module doc)."""
        if not anchor or not anchor[0] or tuple(anchor) in self._anchors_checked:
            return
        seq, mac = int(anchor[0]), str(anchor[1])
        self._anchors_checked.add((seq, mac))
        head = self.audit.head
        if seq > head.seq:
            problem = (
                f"audit log {self.audit.path.name}: the regional recorded this kiosk's audit "
                f"head at seq {seq}, but the log ends at seq {head.seq}: it was cut, deleted "
                "or replaced since"
            )
        elif self.audit.mac_at(seq) != mac:
            problem = (
                f"audit log {self.audit.path.name}: line {seq} differs from the one the "
                "regional recorded: the log was replaced since"
            )
        else:
            return
        self.audit.append("anchor", outcome=f"regional_seq={seq} local_head={head.seq}")
        self.raise_alarms([problem])

    def _not_final(self, qid: bytes, outcome: str) -> None:
        """TIMEOUT/ERROR: the query stays pending; the screen may become UNKNOWN or an
        offline answer."""
        self._note_fallback(self.machine.verdict(qid, outcome, final=False))

    def _link(self, up: bool) -> None:
        was = self.machine.link_up
        t = self.machine.link(up)
        self._note_fallback(t)
        self.events.write("link", up=up)
        if up and not was:
            self.dispatcher.reconnected(self._on_screen)
            self.heartbeat.beat(self.machine.link_up, force=True)

    def _storage_failed(self, reason: str) -> None:
        """A write failed: STORAGE_FULL on screen (never CLEAR), the scan in hand (if
        any) not accepted, a ``storage_full`` event; queries already pending stay so."""
        self.counts["storage_refused"] = self.counts.get("storage_refused", 0) + 1
        log.error("storage: %s: new scans are refused until it works again", reason)
        if self.machine.state == READING:  # the scan in hand: not accepted, and it says so
            self.events.write("refused", reason="storage full", detail=reason)
        self.events.write("storage_full", reason=reason, seq=self.machine.view().seq)
        self._note(self.machine.storage_full(reason))
        self._render()

    def _storage_back(self) -> None:
        """While STORAGE_FULL is shown: back to READY once the card takes writes again."""
        if self.machine.state != STORAGE_FULL or not self.storage.due():
            return
        if self.storage.writable():
            log.warning("storage: writes work again; accepting scans")
            self.events.write("storage_ok", free_bytes=self.storage.free())
            self._note(self.machine.storage_ok())
            self.ledger.finish_deletes()
            if self.machine.link_up:
                self.dispatcher.retry(self._on_screen, force=True)

    # -- time -------------------------------------------------------------------------------
    def _timers(self) -> None:
        now = self._clock()
        self._storage_back()
        self._note_fallback(self.machine.tick())
        if self.machine.link_up and self.dispatcher.due(now):
            self.dispatcher.retry(self._on_screen)
        if self.heartbeat.due(now):
            self.heartbeat.beat(self.machine.link_up)
        if self.signals.acknowledged():
            self._acknowledge()
        self._refresh_list()
        self._render()
        self.signals.update(now)

    # -- helpers ----------------------------------------------------------------------------
    def _on_screen(self, qid: bytes) -> bool:
        """The officer is still waiting for this query on screen (no answer shown yet)."""
        cur = self.machine.current
        return cur is not None and cur.query_id == qid and self.machine.state in (READING, QUERYING)

    def _note_fallback(self, t: Transition | None) -> None:
        """Note ``t``; a fall-back to UNKNOWN or to an offline answer for a query is
        audited and reported as such."""
        self._note(t)
        if t is None or t.query_id is None or t.late or t.before not in (READING, QUERYING):
            return
        qid = t.query_id
        if t.after == UNKNOWN:
            self.ledger.unknown(qid, self.machine.reason)
            self.offline.report_unknown(t)
        elif t.after in OFFLINE_STATES:
            self.counts["offline"] += 1
            self.offline.report_answer(t, self.machine.answered_offline[qid])

    def _clock_offset(self, offset: float) -> None:
        """The clock notice on screen (or off, once the clock is right again) and an event."""
        shown = offset if abs(offset) >= CLOCK_NOTICE else None
        if shown != self.machine.clock_offset_s:
            self.events.write("clock", offset_s=round(offset, 3), notice=shown is not None)
        self.machine.clock_offset_s = shown

    def _refresh_list(self, force: bool = False) -> None:
        """Put the offline list's version and age on the machine's view (every
        :data:`LIST_REFRESH` s, or now)."""
        now = self._clock()
        if force or now - self._list_shown_at >= LIST_REFRESH:
            self._list_shown_at = now
            self.machine.offline_list = self.offline.shown()

    def _note(self, t: Transition | None) -> None:
        # No status beat here: the status goes out on its fixed schedule only (heartbeat.py).
        self.presenter.note(t, self.machine.reason)

    def _render(self, force: bool = False) -> None:
        view = self.machine.view()
        if view.seq is not None and view.seq == self.supervisor_seq and view.state in LATCHED:
            view = dataclasses.replace(view, supervisor=True)  # "supervisor on the way"
        self.presenter.render(view, force=force)

    def _status_info(self) -> dict[str, Any]:
        """The kiosk's figures at a status beat. None of them goes into the retained
        status (it says online/offline only, firmware/agent/status.py): they reach the
        desk sealed, in the telemetry (firmware/agent/telemetry.py)."""
        head = self.ledger.head
        return {
            "pending": len(self.ledger),
            "audit_head": {"seq": head.seq, "mac": head.mac},
            "documents": self.counts["documents"],
            "offline_list": self.offline.status(),
            "alarms": list(self.alarms),
            "storage_full": self.machine.state == STORAGE_FULL,
        }
