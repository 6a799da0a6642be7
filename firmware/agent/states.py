"""The terminal's state machine: pure, single-threaded, time from an injected clock.

    IDLE -> READING -> QUERYING -> CLEAR | POSSIBLE_MATCH | UNKNOWN
                    |             \\-> POSSIBLE_MATCH_OFFLINE | NOT_LISTED (offline list)
                    \\-> RESCAN (the MRZ failed validation: nothing is sent)

Rules, in the order they protect the officer:

1. **Never "clear" by mistake.** Only a ``NO_MATCH`` verdict for the *current* query gives
   CLEAR. ``TIMEOUT`` and ``ERROR`` give UNKNOWN ("check manually"); so does the broker
   link going down while a query is open, and a document accepted while the link is down.
   The machine also keeps its own deadline (``query_timeout`` + ``grace``): if no verdict
   came at all, :meth:`tick` turns QUERYING into UNKNOWN.
2. **A possible match latches.** POSSIBLE_MATCH stays until :meth:`acknowledge`. While it
   is latched, new documents are *refused* (:meth:`document_arrived` returns False): the
   officer must deal with the hit first, and a refused document was never accepted, so
   nothing is lost.
3. **Late verdicts.** A query shown as UNKNOWN stays in the outbox and is re-sent; its
   verdict may arrive later ("pending resolved"):

   - while that document is still on screen (UNKNOWN, before the hold expires), the
     screen shows the real outcome, marked ``late``;
   - when another document is on screen, the verdict never replaces that screen: it is
     added as a :class:`Notice` (``scan #N: clear`` etc.). Clear/unknown notices fade
     after ``notice_hold``; a *possible match* notice is sticky until acknowledged, and as
     soon as the screen would go back to IDLE it escalates to a latched POSSIBLE_MATCH
     screen for that earlier scan. A hit is thus never lost and never pinned on the wrong
     document.
4. Results other than POSSIBLE_MATCH fall back to IDLE after their hold time.
5. **The offline list answers only where the online answer is missing.** Wherever the
   machine would show UNKNOWN for the current query (link down at the scan, the link lost
   while querying, a ``TIMEOUT``/``ERROR`` verdict, its own deadline), it first asks the
   injected ``offline_lookup(query_id)``: an :class:`OfflineResult` gives
   POSSIBLE_MATCH_OFFLINE (a listed hash: latched like POSSIBLE_MATCH) or NOT_LISTED
   (never CLEAR; the screen shows the list's age); None (no list, too old, refused) keeps
   UNKNOWN. The query stays pending either way, and its online verdict, when it comes,
   wins: a POSSIBLE_MATCH replaces the offline screen or becomes a sticky notice (rule 3);
   a NO_MATCH after an offline hit is "cleared online" (``View.cleared`` on screen, a
   ``cleared`` notice otherwise).
6. **Storage faults are shown, never hidden** (issue 14). STORAGE_FULL ("storage full,
   check manually") when a scan or a verdict could not be made durable; it leaves by
   itself (:meth:`storage_ok`) when space returns. FAULT when a damaged file was put aside
   at start; the officer acknowledges it. Neither latches new documents out, and a late
   POSSIBLE_MATCH arriving on either screen latches at once.

The machine knows nothing of MQTT, SQLite or LEDs: the agent feeds it events and renders
:meth:`view`. Every change is returned as a :class:`Transition` for logging and events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

IDLE = "idle"
READING = "reading"
QUERYING = "querying"
CLEAR = "clear"
POSSIBLE_MATCH = "possible_match"
UNKNOWN = "unknown"
RESCAN = "rescan"
OFFLINE_MATCH = "possible_match_offline"
NOT_LISTED = "not_listed"
#: A notice's state for an online NO_MATCH after an offline hit.
CLEARED = "cleared"
#: The state directory is full: a scan that cannot be made durable is not accepted.
STORAGE_FULL = "storage_full"
#: A stored file was found damaged at start (put aside, alarm raised): check manually.
FAULT = "fault"
STATES = (
    IDLE,
    READING,
    QUERYING,
    CLEAR,
    POSSIBLE_MATCH,
    UNKNOWN,
    RESCAN,
    OFFLINE_MATCH,
    NOT_LISTED,
    STORAGE_FULL,
    FAULT,
)
#: Screens that refuse new documents until acknowledged.
LATCHED = (POSSIBLE_MATCH, OFFLINE_MATCH)
#: Screens answered from the offline list (the query is still pending online).
OFFLINE_STATES = (OFFLINE_MATCH, NOT_LISTED)

#: Verdict outcomes from the query client and the screen state each one gives.
OUTCOME_STATE = {
    "NO_MATCH": CLEAR,
    "POSSIBLE_MATCH": POSSIBLE_MATCH,
    "ERROR": UNKNOWN,
    "TIMEOUT": UNKNOWN,
}


@dataclass(frozen=True)
class OfflineResult:
    """The offline list's answer for a query: ``listed`` or not, by which list, how old."""

    listed: bool
    list_version: int
    list_age_s: float


@dataclass(frozen=True)
class ListShown:
    """The offline list as the idle screen shows it: version and age in hours (rounded,
    so the view changes at most every few minutes), or why there is none usable."""

    version: int | None
    age_h: float | None
    usable: bool
    reason: str | None = None


@dataclass(frozen=True)
class Notice:
    """A verdict that arrived for an earlier scan than the one on screen."""

    seq: int
    query_id: bytes
    state: str  # CLEAR, POSSIBLE_MATCH, OFFLINE_MATCH (after a restart), UNKNOWN or CLEARED
    at: float
    sticky: bool  # a possible match: kept until acknowledged


@dataclass(frozen=True)
class Transition:
    """One change of screen state (or a recorded late verdict), for logs and events."""

    at: float
    before: str
    after: str
    cause: str
    seq: int | None = None
    query_id: bytes | None = None
    late: bool = False


@dataclass(frozen=True)
class View:
    """What the signals should show now. ``screen`` adds ``offline`` to the states."""

    state: str
    since: float
    seq: int | None
    reason: str | None
    late: bool
    link_up: bool
    notices: tuple[Notice, ...]
    pending: tuple[int, ...]
    offline: OfflineResult | None = None  # the offline answer on screen
    cleared: bool = False  # CLEAR after an offline hit: "cleared online"
    offline_list: ListShown | None = None  # for the idle and no-link screens
    clock_offset_s: float | None = None  # the clock notice: region's time minus the kiosk's
    supervisor: bool = False  # a supervisor's panel acknowledged this match (firmware/lane)

    @property
    def screen(self) -> str:
        """The signal state: an idle terminal without a broker link shows ``offline``."""
        if self.state == IDLE and not self.link_up:
            return "offline"
        return self.state


@dataclass
class _Open:
    seq: int
    query_id: bytes | None = None


@dataclass
class TerminalStateMachine:
    """See the module docstring. ``clock`` returns monotonic seconds."""

    clock: Callable[[], float]
    query_timeout: float = 2.0
    grace: float = 1.0
    result_hold: float = 5.0
    unknown_hold: float = 10.0
    rescan_hold: float = 4.0
    notice_hold: float = 30.0
    link_up: bool = False
    state: str = IDLE
    since: float = 0.0
    reason: str | None = None
    late: bool = False
    current: _Open | None = None
    notices: list[Notice] = field(default_factory=list)
    pending: dict[bytes, int] = field(default_factory=dict)
    offline_lookup: Callable[[bytes], OfflineResult | None] | None = None
    answered_offline: dict[bytes, OfflineResult] = field(default_factory=dict)
    offline_list: ListShown | None = None
    clock_offset_s: float | None = None  # set by the agent core from a time hint
    shown_offline: OfflineResult | None = None
    cleared: bool = False

    def __post_init__(self) -> None:
        self.since = self.clock()

    # -- events ---------------------------------------------------------------------------
    def document_arrived(self, seq: int) -> bool:
        """A document came from the scanner. False (refused) while a possible match is latched."""
        if self.state in LATCHED:
            return False
        self._go(READING, "document", seq=seq)
        self.current = _Open(seq)
        return True

    def document_invalid(self, reason: str) -> Transition:
        """The MRZ failed validation: ask for a rescan; nothing was sent."""
        return self._go(RESCAN, "invalid", reason=reason, seq=self._seq())

    def query_sent(self, query_id: bytes) -> Transition:
        """The accepted document is in the outbox with this id (sent if the link is up)."""
        cur = self.current or _Open(-1)
        cur.query_id = query_id
        self.current = cur
        self.pending[query_id] = cur.seq
        if not self.link_up:
            return self._fallback("offline", "offline", cur.seq, query_id)
        return self._go(QUERYING, "sent", seq=cur.seq, qid=query_id)

    def storage_full(self, reason: str) -> Transition:
        """A scan or verdict could not be made durable (disk full, I/O error): the officer
        checks manually. Nothing on screen says CLEAR; a scan in hand was not accepted."""
        return self._go(STORAGE_FULL, "storage", reason=reason, seq=self._seq())

    def storage_ok(self) -> Transition | None:
        """Space is back: leave the storage-full screen (nothing else changes)."""
        if self.state != STORAGE_FULL:
            return None
        self.current = None
        return self._go(IDLE, "storage ok")

    def fault(self, reason: str) -> Transition:
        """An alarm at start (a damaged file put aside): FAULT until acknowledged."""
        self.current = None
        return self._go(FAULT, "alarm", reason=reason)

    def restored(self, entries: Iterable[tuple[bytes, int]]) -> None:
        """Queries found pending in the outbox after a restart: (query id, scan number)."""
        for qid, seq in entries:
            self.pending[qid] = seq

    def relatch_offline(self, query_id: bytes, seq: int, res: OfflineResult) -> Transition:
        """An offline hit no officer acknowledged before a restart (its query is pending):
        latched again, or a sticky notice behind a match latched already."""
        self.pending[query_id] = seq
        self.answered_offline[query_id] = res
        if self.state in LATCHED:
            now = self.clock()
            self.notices.append(Notice(seq, query_id, OFFLINE_MATCH, now, sticky=True))
            return Transition(now, self.state, self.state, "restart", seq, query_id)
        self.current = _Open(seq, query_id)
        return self._go(OFFLINE_MATCH, "restart", seq=seq, qid=query_id, offline=res)

    def verdict(self, query_id: bytes, outcome: str, *, final: bool = True) -> Transition | None:
        """A verdict for ``query_id``. ``final`` is False when the query stays pending
        (a timeout): then it only ever makes things UNKNOWN."""
        target = OUTCOME_STATE.get(outcome, UNKNOWN)
        seq = self.pending.get(query_id)
        was_offline = None
        if final:
            self.pending.pop(query_id, None)
            was_offline = self.answered_offline.pop(query_id, None)
        is_current = self.current is not None and self.current.query_id == query_id
        now = self.clock()
        if is_current and self.state == QUERYING:
            if target == UNKNOWN:
                return self._fallback("verdict", outcome.lower(), seq, query_id)
            return self._go(target, "verdict", seq=seq, qid=query_id)
        if not final or target == UNKNOWN or seq is None:
            # A timeout/error for something no longer querying changes nothing on screen.
            return None
        cleared = was_offline is not None and was_offline.listed and target == CLEAR
        cause = "cleared online" if cleared else "late verdict"
        if is_current and self.state in (UNKNOWN, *OFFLINE_STATES):
            return self._go(target, cause, seq=seq, qid=query_id, late=True, cleared=cleared)
        if self.state in (IDLE, STORAGE_FULL, FAULT) and target == POSSIBLE_MATCH:
            self.current = _Open(seq, query_id)
            return self._go(target, "late verdict", seq=seq, qid=query_id, late=True)
        state = CLEARED if cleared else target
        self.notices.append(Notice(seq, query_id, state, now, sticky=target == POSSIBLE_MATCH))
        return Transition(now, self.state, self.state, cause, seq, query_id, late=True)

    def link(self, up: bool) -> Transition | None:
        """The broker link went up or down. Down while querying is UNKNOWN at once."""
        self.link_up = up
        if not up and self.state == QUERYING and self.current is not None:
            return self._fallback("offline", "offline", self.current.seq, self.current.query_id)
        return None

    def acknowledge(self) -> Transition | None:
        """The officer pressed acknowledge.

        On a latched POSSIBLE_MATCH it releases that match; if another earlier scan also
        turned out to be a possible match (a sticky notice), that one is latched next.
        On any other screen it clears the sticky notices shown there.
        """
        sticky = [n for n in self.notices if n.sticky]
        if self.state == FAULT:
            return self._go(IDLE, "acknowledged")
        if self.state in LATCHED:
            if sticky:
                nxt = sticky[0]
                self.notices.remove(nxt)
                self.current = _Open(nxt.seq, nxt.query_id)
                if nxt.state == OFFLINE_MATCH and nxt.query_id in self.answered_offline:
                    res = self.answered_offline[nxt.query_id]
                    return self._go(
                        OFFLINE_MATCH, "acknowledged", seq=nxt.seq, qid=nxt.query_id, offline=res
                    )
                return self._go(
                    POSSIBLE_MATCH, "acknowledged", seq=nxt.seq, qid=nxt.query_id, late=True
                )
            self.current = None
            return self._go(IDLE, "acknowledged")
        self.notices = [n for n in self.notices if not n.sticky]
        if sticky:
            now = self.clock()
            return Transition(now, self.state, self.state, "acknowledged")
        return None

    def tick(self) -> Transition | None:
        """Time passed: deadlines, hold times, fading notices. Call often."""
        now = self.clock()
        self.notices = [n for n in self.notices if n.sticky or now - n.at < self.notice_hold]
        age = now - self.since
        if self.state == QUERYING and age >= self.query_timeout + self.grace:
            cur = self.current
            return self._fallback(
                "deadline", "timeout", cur.seq if cur else None, cur.query_id if cur else None
            )
        hold = {
            CLEAR: self.result_hold,
            UNKNOWN: self.unknown_hold,
            RESCAN: self.rescan_hold,
            NOT_LISTED: self.unknown_hold,
        }
        if self.state in hold and age >= hold[self.state]:
            sticky = next((n for n in self.notices if n.sticky), None)
            if sticky is not None:
                # An earlier scan turned out to be a possible match: latch it now.
                self.notices.remove(sticky)
                self.current = _Open(sticky.seq, sticky.query_id)
                return self._go(
                    POSSIBLE_MATCH, "late verdict", seq=sticky.seq, qid=sticky.query_id, late=True
                )
            self.current = None
            return self._go(IDLE, "hold expired")
        return None

    # -- output ---------------------------------------------------------------------------
    def view(self) -> View:
        return View(
            state=self.state,
            since=self.since,
            seq=self.current.seq if self.current else None,
            reason=self.reason,
            late=self.late,
            link_up=self.link_up,
            notices=tuple(self.notices),
            pending=tuple(sorted(s for q, s in self.pending.items() if not self._is_current(q))),
            offline=self.shown_offline,
            cleared=self.cleared,
            offline_list=self.offline_list,
            clock_offset_s=self.clock_offset_s,
        )

    # -- internals ------------------------------------------------------------------------
    def _is_current(self, qid: bytes) -> bool:
        return (
            self.current is not None
            and self.current.query_id == qid
            and self.state in (READING, QUERYING, *OFFLINE_STATES)
        )

    def _fallback(self, cause: str, reason: str, seq: int | None, qid: bytes | None) -> Transition:
        """No online answer for the current query: the offline list's, else UNKNOWN."""
        res = self.offline_lookup(qid) if self.offline_lookup and qid is not None else None
        if res is None or qid is None:
            return self._go(UNKNOWN, cause, reason=reason, seq=seq, qid=qid)
        self.answered_offline[qid] = res
        state = OFFLINE_MATCH if res.listed else NOT_LISTED
        return self._go(state, cause, reason=reason, seq=seq, qid=qid, offline=res)

    def _seq(self) -> int | None:
        return self.current.seq if self.current else None

    def _go(
        self,
        state: str,
        cause: str,
        *,
        reason: str | None = None,
        seq: int | None = None,
        qid: bytes | None = None,
        late: bool = False,
        offline: OfflineResult | None = None,
        cleared: bool = False,
    ) -> Transition:
        now = self.clock()
        t = Transition(now, self.state, state, cause, seq, qid, late)
        self.state, self.since, self.reason, self.late = state, now, reason, late
        self.shown_offline, self.cleared = offline, cleared
        return t
