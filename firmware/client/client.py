"""The sealed query client: one terminal session, pipelined queries, verdicts by callback.

    with QueryClient(cfg) as qc:
        qc.submit(query_id, dk, on_verdict)      # non-blocking; on_verdict(Verdict) once
        v = qc.query(dk)                         # blocking convenience

Every submitted query gets exactly one verdict through ``on_verdict``: the regional's
answer (``NO_MATCH``, ``POSSIBLE_MATCH``, ``ERROR``) or ``TIMEOUT`` once its deadline
passes. A timeout is never a ``NO_MATCH``. A query submitted while the link is down still
waits for its deadline (paho sends it after the reconnect if that comes in time); the
caller may re-submit later with the same query id (the regional answers each sealed copy).

Late answers: a response that arrives after its query timed out is delivered as a
``Verdict`` with ``late=True`` to ``on_late_verdict`` when given, otherwise to the query's
own ``on_verdict`` (a second call). The agent uses it to resolve pending queries.

Threads: responses are opened and delivered on paho's network thread, timeouts on a
small sweeper thread. Callbacks must be quick and must not block.

The public-key work happens once per session (:class:`TerminalSession.new`); each query
costs one AEAD seal and one AEAD open. The session is renewed before it expires; answers
to queries sealed under the previous session are still accepted.

Two clocks (docs/time.md): ``clock`` is the wall clock, used only for protocol time and
what is recorded; ``timer`` (``time.monotonic``) measures every deadline, round trip and
latency, so a wall-clock step (NTP, a technician, a Pi without RTC) neither stalls a query
in flight nor expires it early.

Adaptive timeout (docs/protocol.md): a query submitted without its own ``timeout`` waits
:meth:`QueryClient.query_timeout`, from the round trips measured so far
(:class:`~firmware.client.rtt.RoundTripEstimator`: RFC 6298, between
``cfg.query_timeout`` and ``cfg.query_timeout_max``). Samples are the answers to queries
sealed once (late ones too) and the link's SUBSCRIBE round trip at each connect.

Protocol time (docs/time.md): queries and tickets carry ``clock() + clock_offset``. A
regional that finds a query's time outside its window answers with a signed time hint
(:class:`~firmware.protocol.session.TimeHint`); the client then adopts the offset
(the regional's time minus the midpoint of the round trip), starts a new session at the
corrected time and reseals that query once, with the same id: one extra round trip. The
system clock is never touched. ``on_clock(offset)`` (any thread; quick) hears of every
adopted offset. Authenticated time (after a hint or any answer) is also what the broker
certificate's times are checked against (:class:`~firmware.transport.mqtt.MqttLink`).
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware.client.config import ClientConfig
from firmware.client.rtt import RoundTripEstimator
from firmware.errors import EnvelopeError, FieldtermTimeout
from firmware.protocol import keys, topics
from firmware.protocol.session import TerminalSession, TimeHint
from firmware.transport.mqtt import MqttLink

log = logging.getLogger(__name__)

OUTCOMES = ("NO_MATCH", "POSSIBLE_MATCH", "ERROR", "TIMEOUT")
LATE_MEMORY = 10_000  # timed-out query ids remembered for late answers
RENEW_MARGIN = 0.1  # renew a session when less than this fraction of its lifetime is left
#: The sweeper delivers TIMEOUT at most this late, and so wakes at most this often: answered
#: queries leave their deadlines in the heap, and waking for each one (a thread switch per
#: query) cost round-trip latency. 20 ms is nothing next to a 2 s timeout.
SWEEP_GRANULARITY = 0.02
#: A time hint that moves protocol time by more than this (s) starts a new session: the
#: ticket's issued/expires times were taken on the wrong clock.
SESSION_RETIME = 30.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one query as the terminal sees it."""

    query_id: bytes
    outcome: str  # NO_MATCH, POSSIBLE_MATCH, ERROR, TIMEOUT
    record: dict[str, str] | None = None
    list_version: int | None = None
    reason: str | None = None
    latency_s: float = 0.0
    late: bool = False
    #: The regional's record of this terminal's audit head, (seq, MAC hex), when the
    #: query carried one (docs/protocol.md, "Audit anchor").
    anchor: tuple[int, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "query_id": self.query_id.hex(),
            "list_version": self.list_version,
            "record": self.record,
            "reason": self.reason,
            "latency_ms": round(self.latency_s * 1000.0, 3),
        }


OnVerdict = Callable[[Verdict], None]


@dataclass
class _Pending:
    on_verdict: OnVerdict
    started: float  # timer (monotonic) seconds at the latest submit
    deadline: float  # timer seconds
    nonces: set[bytes] = field(default_factory=set)
    dk: Any = None  # kept to reseal the query after a time hint
    hinted: bool = False  # resealed once after a time hint already


class QueryClient:
    """Sealed queries over one MQTT link; see the module docstring for the guarantees."""

    def __init__(
        self,
        cfg: ClientConfig,
        *,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        will: tuple[Any, ...] | None = None,
        on_link: Callable[[bool], None] | None = None,
        on_late_verdict: OnVerdict | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        client_id: str | None = None,
        link_factory: Callable[..., Any] | None = None,
    ):
        """``clock`` is the wall clock (protocol time only); ``timer`` a monotonic clock
        for every deadline and round trip (see the module doc).
        ``link_factory``: builds the link instead of :class:`MqttLink`, with the same
        arguments (a fleet simulator drives many links from one event loop)."""
        self.cfg = cfg
        self._clock = clock
        self._timer = timer
        self.rtt = RoundTripEstimator(
            cfg.query_timeout, max(cfg.query_timeout, getattr(cfg, "query_timeout_max", 0.0))
        )
        self._rng = rng
        self._on_late = on_late_verdict
        self._identity = keys.load_ed25519_private(cfg.identity_key)
        self._kem_public = keys.load_x25519_public(cfg.regional_kem_public)
        self._qtopic = topics.query_topic(cfg.region, cfg.terminal_id)
        self._rtopic = topics.response_topic(cfg.region, cfg.terminal_id)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[bytes, _Pending] = {}
        self._late: OrderedDict[bytes, _Pending] = OrderedDict()
        self._deadlines: list[tuple[float, bytes]] = []
        self._sessions: list[TerminalSession] = []  # newest last; at most two kept
        #: The terminal's audit head (seq, MAC) for each query, or None (the agent sets it).
        self.audit_head: Callable[[], tuple[int, bytes] | None] | None = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._started = False
        self.counts = {"sent": 0, "answered": 0, "timeouts": 0, "late": 0, "bad": 0, "stray": 0}
        self.counts.update(time_hints=0, resealed=0)
        self._sign_public = (
            keys.load_ed25519_public(cfg.regional_sign_public)
            if cfg.regional_sign_public is not None
            else None
        )
        #: Protocol time minus the local clock, adopted from the regional's last time hint.
        self.clock_offset = 0.0
        #: Whether the regional has vouched for protocol time (a time hint or an answer).
        self.clock_known = False
        self.on_clock: Callable[[float], None] | None = None
        self._session_offset = 0.0  # clock_offset when the current session was made
        self.link = (link_factory or MqttLink)(
            cfg.broker,
            client_id or cfg.terminal_id,
            on_message=self._on_message,
            subscriptions=(self._rtopic,),
            will=will,
            on_link=on_link,
            cert_time=self._authenticated_time,
            on_round_trip=self._link_round_trip,
            timer=timer,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, sweeper: bool = True) -> QueryClient:
        """Make the session and start the link; without ``sweeper`` no timeout thread is
        started and the caller calls :meth:`sweep` itself (an external event loop)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._session(self._clock())
            if sweeper:
                self._sweeper = threading.Thread(
                    target=self._sweep_loop, name="query-timeouts", daemon=True
                )
                self._sweeper.start()
        self.link.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the link is ready: connected and subscribed to this terminal's
        response topic, so no answer can be dropped for want of a subscription."""
        return self.link.wait_ready(timeout)

    def connected(self) -> bool:
        """Whether the link is ready (connected and subscribed)."""
        return self.link.ready.is_set()

    def close(self) -> None:
        """Stop the link and the sweeper; still-pending queries get no verdict. Idempotent."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self.link.close()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5.0)

    def __enter__(self) -> QueryClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ---------------------------------------------------------------------------
    def submit(
        self,
        query_id: bytes,
        dk: Any,
        on_verdict: OnVerdict,
        timeout: float | None = None,
    ) -> None:
        """Seal and send one query; ``on_verdict`` is called exactly once (see module doc).

        Re-submitting a query id that is still pending adds a fresh sealed copy and keeps
        the earlier callback's deadline extended to the new one.
        """
        now = self._timer()
        with self._lock:
            limit = self.rtt.timeout() if timeout is None else timeout
            pnow = self._clock() + self.clock_offset
            sealed = self._session(pnow).seal_query(query_id, dk, pnow)
            p = self._pending.get(query_id) or self._late.pop(query_id, None)
            if p is None:
                p = _Pending(on_verdict, now, now + limit)
            else:
                p.on_verdict, p.started, p.deadline = on_verdict, now, now + limit
                p.hinted = False
            p.nonces.add(sealed.nonce)
            p.dk = dk
            self._pending[query_id] = p
            earliest = self._deadlines[0][0] if self._deadlines else float("inf")
            heapq.heappush(self._deadlines, (p.deadline, query_id))
            if p.deadline < earliest:  # else the sweeper already wakes in time
                self._wake.notify()
            self.counts["sent"] += 1
        self.link.publish(self._qtopic, sealed.payload, qos=1)

    def query(self, dk: Any, timeout: float | None = None) -> Verdict:
        """Blocking: one query, its verdict (``TIMEOUT`` after the deadline)."""
        done = threading.Event()
        box: list[Verdict] = []

        def got(v: Verdict) -> None:
            if not box:
                box.append(v)
                done.set()

        limit = self.query_timeout() if timeout is None else timeout
        self.submit(self._rng(16), dk, got, timeout=limit)
        if not done.wait(limit + 5.0):
            raise FieldtermTimeout("no verdict and no timeout from the sweeper")
        return box[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """Publish on the same link (the agent's status messages)."""
        return self.link.publish(topic, payload, qos=qos, retain=retain)

    def query_timeout(self) -> float:
        """The timeout a query submitted now gets (adapted to the round trip)."""
        with self._lock:
            return self.rtt.timeout()

    def round_trip(self) -> dict[str, float | int | None]:
        """The round-trip estimate (srtt, rttvar, timeout, samples) for logs and status."""
        with self._lock:
            return self.rtt.snapshot()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- internals -------------------------------------------------------------------------
    def protocol_time(self) -> float:
        """The time queries carry: the local clock plus the adopted offset."""
        return self._clock() + self.clock_offset

    def _authenticated_time(self) -> float | None:
        """Protocol time once the regional has vouched for it, else None (MqttLink)."""
        return self.protocol_time() if self.clock_known else None

    def _session(self, now: float, *, renew: bool = False) -> TerminalSession:
        """The current session, renewed when little of its lifetime is left, or when
        ``renew`` (lock held). ``now`` is protocol time."""
        if self._sessions and not renew:
            s = self._sessions[-1]
            if now < s.expires_at - RENEW_MARGIN * self.cfg.session_lifetime:
                return s
        s = TerminalSession.new(
            region=self.cfg.region,
            terminal_id=self.cfg.terminal_id,
            identity_key=self._identity,
            regional_kem_public=self._kem_public,
            now=now,
            lifetime=int(self.cfg.session_lifetime),
        )
        s.audit_head = self.audit_head
        self._sessions = [*self._sessions[-1:], s]
        self._session_offset = self.clock_offset
        log.info("terminal %s: new session, expires %.0f", self.cfg.terminal_id, s.expires_at)
        return s

    def _on_message(self, topic: str, payload: bytes) -> None:
        """paho thread: open a response and deliver its verdict."""
        opened = None
        for s in reversed(self._sessions):
            try:
                opened = s.open_reply(payload, self._sign_public)
                break
            except EnvelopeError:
                continue
        if opened is None:
            self.counts["bad"] += 1
            log.warning("terminal %s: a response failed to open; dropped", self.cfg.terminal_id)
            return
        nonce, r = opened
        if isinstance(r, TimeHint):
            self._on_time_hint(nonce, r)
            return
        now = self._timer()
        if not self.clock_known:
            self.clock_known = True  # an answer: protocol time is within the window
            self.link.check_peer_time()
        late = False
        with self._lock:
            p = self._pending.get(r.query_id)
            if p is not None and nonce in p.nonces:
                del self._pending[r.query_id]
            else:
                p = self._late.get(r.query_id)
                if p is None or nonce not in p.nonces:
                    self.counts["stray"] += 1
                    return
                del self._late[r.query_id]
                late = True
            self.counts["late" if late else "answered"] += 1
            if len(p.nonces) == 1:  # Karn: sealed once, so this answer's round trip is sure
                self.rtt.sample(now - p.started)
        v = Verdict(
            r.query_id,
            r.outcome,
            dict(r.record) if r.record is not None else None,
            r.list_version,
            r.reason,
            max(0.0, now - p.started),
            late,
            r.anchor,
        )
        self._deliver(p.on_verdict if not (late and self._on_late) else self._on_late, v)

    def _on_time_hint(self, nonce: bytes, hint: TimeHint) -> None:
        """paho thread: adopt the regional's time and reseal the query once (module doc)."""
        now = self._timer()
        wall = self._clock()
        resend = None
        give_up = None
        with self._lock:
            p = self._pending.get(hint.query_id)
            if p is None or nonce not in p.nonces:
                # Only a hint within its query's deadline is used: the round trip, and so
                # the error of the offset (at most half of it), stay under query_timeout.
                # A broker that held a hint back for hours cannot shift protocol time.
                self.counts["stray"] += 1
                return
            self.counts["time_hints"] += 1
            # The round trip's midpoint on the wall clock, its length on the timer: a wall
            # step while the query was out does not skew the offset.
            offset = hint.regional_time - (wall - (now - p.started) / 2)
            # A new ticket when the current one was made on a clock this far off (not once
            # per hint: pipelined queries each bring one, and the previous session is kept
            # only one deep for their answers).
            renew = abs(offset - self._session_offset) > SESSION_RETIME
            self.clock_offset, self.clock_known = offset, True
            pnow = wall + offset
            session = self._session(pnow, renew=renew)
            if not p.hinted and p.dk is not None:
                p.hinted = True
                sealed = session.seal_query(hint.query_id, p.dk, pnow)
                p.nonces.add(sealed.nonce)
                self.counts["resealed"] += 1
                resend = sealed.payload
            else:
                del self._pending[hint.query_id]  # a second hint: the clock did not settle
                give_up = p
        log.warning(
            "terminal %s: signed time hint: this clock is %.3f s %s the regional's; "
            "protocol time adjusted (the system clock is not changed)",
            self.cfg.terminal_id,
            abs(offset),
            "behind" if offset > 0 else "ahead of",
        )
        if resend is not None:
            self.link.publish(self._qtopic, resend, qos=1)
        if give_up is not None:
            reason = "the regional refused the query time twice (clock not settled)"
            v = Verdict(hint.query_id, "ERROR", reason=reason, latency_s=now - give_up.started)
            self._deliver(give_up.on_verdict, v)
        self.link.check_peer_time()
        if self.on_clock is not None:
            try:
                self.on_clock(offset)
            except Exception:
                log.exception("on_clock callback failed")

    def _link_round_trip(self, seconds: float) -> None:
        """paho thread: the link's SUBSCRIBE round trip, a sample before any answer."""
        with self._lock:
            self.rtt.sample(seconds)

    def _deliver(self, cb: OnVerdict | None, v: Verdict) -> None:
        if cb is None:
            return
        try:
            cb(v)
        except Exception:
            log.exception("verdict callback failed")

    def sweep(self) -> int:
        """Deliver TIMEOUT for every query past its deadline; returns how many."""
        now = self._timer()
        due: list[tuple[bytes, _Pending]] = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                deadline, qid = heapq.heappop(self._deadlines)
                p = self._pending.get(qid)
                if p is None or p.deadline != deadline:
                    continue  # answered, or re-submitted with a later deadline
                del self._pending[qid]
                self._late[qid] = p
                while len(self._late) > LATE_MEMORY:
                    self._late.popitem(last=False)
                due.append((qid, p))
            self.counts["timeouts"] += len(due)
            up = self.connected()
            if due and up:  # once per sweep, not per query: a burst is one slow moment
                self.rtt.backoff()
        for qid, p in due:
            reason = "no answer in time" if up else "no broker link"
            self._deliver(
                p.on_verdict, Verdict(qid, "TIMEOUT", reason=reason, latency_s=now - p.started)
            )
        return len(due)

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                wait = 0.5
                if self._deadlines:
                    due = self._deadlines[0][0] - self._timer()
                    wait = min(wait, max(SWEEP_GRANULARITY, due)) if due > 0 else 0.0
                if wait > 0:
                    self._wake.wait(wait)
            if not self._stop.is_set():
                self.sweep()
