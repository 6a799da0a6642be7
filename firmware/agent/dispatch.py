"""Sending sealed queries, and sending pending ones again.

A query that got ``TIMEOUT`` or ``ERROR`` stays in the outbox and is re-sent with its
*same* query id (the regional answers a repeated id idempotently): every
``retry_interval`` while the link is up, and at once when the link comes back. What was
in flight over a lost connection is forgotten, so it is re-sent too. A query is never
re-sent while its first copy is still in flight, nor (unless forced) while the officer
is waiting for it on screen, where the state machine's own deadline governs.

After a reconnect (issue 14): the re-send at once can reach a restarted broker before the
regional has subscribed again, and the broker drops it; the scan then waited a whole
``retry_interval``. So the reconnect starts *rounds* at :data:`RECONNECT_ROUNDS` (+1, +3,
+7, +15 s after it), each re-sending every pending query, in flight or not (a fresh sealed
copy with the same id), until the first answer from the regional over the new link. That
answer proves the regional is subscribed, so the rounds end with one catch-up round
:data:`CATCH_UP` s later, for the queries still unanswered (their copies may all have
been dropped before it subscribed); the ordinary schedule takes over after that. Bounded:
at most ``len(RECONNECT_ROUNDS) + 1`` extra copies per pending query per reconnect.
Idempotent: the regional answers each copy of a query id alike, the query client takes
the first answer, and a second verdict finds no outbox row (a ``duplicate`` event).
Timers use the injected monotonic ``clock``; a wall-clock step does not move them.

A re-send for a scan no longer on screen (the officer was shown an offline answer or
UNKNOWN; or the process restarted) goes as the query's sealed box, type ``0x53``
(:mod:`firmware.protocol.pending`): the regional then knows the answer is late and says
so in the hit alert. One still on screen (the link came back while the officer waits) goes
as the plain key: its answer is not late.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from firmware.agent.events import EventLog
from firmware.agent.ledger import QueryLedger
from firmware.agent.ports import QueryPort

log = logging.getLogger(__name__)

#: Seconds after a reconnect at which pending queries are sent again (module doc).
RECONNECT_ROUNDS = (1.0, 3.0, 7.0, 15.0)
#: Seconds after the first answer over a new link for the last round.
CATCH_UP = 0.5
#: Outcomes that come from the regional itself (TIMEOUT is the client's own).
REGIONAL_OUTCOMES = ("NO_MATCH", "POSSIBLE_MATCH", "ERROR")


class QueryDispatcher:
    """Submits queries to a :class:`~firmware.agent.ports.QueryPort` and keeps the retry
    schedule. ``on_verdict`` goes to the client with each query; ``on_failed(query_id)``
    is called when a query could not even be handed to the client."""

    def __init__(
        self,
        query: QueryPort,
        ledger: QueryLedger,
        *,
        on_verdict: Callable[[Any], None],
        on_failed: Callable[[bytes], None],
        events: EventLog,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float = 10.0,
        reconnect_rounds: tuple[float, ...] = RECONNECT_ROUNDS,
    ):
        self.query = query
        self._ledger = ledger
        self._on_verdict = on_verdict
        self._on_failed = on_failed
        self._events = events
        self._clock = clock
        self.retry_interval = retry_interval
        self._in_flight: set[bytes] = set()
        self._last_retry = clock()
        self.reconnect_rounds = tuple(sorted(reconnect_rounds))
        self._rounds: list[float] = []  # due times (clock) of the reconnect rounds left
        self._heard = False  # an answer from the regional arrived since the reconnect
        self._final_round = False  # the next round is the catch-up: the last one
        self.counts = {"rounds": 0, "round_sends": 0}

    @property
    def in_flight(self) -> frozenset[bytes]:
        """Query ids sent over the current connection and not yet answered."""
        return frozenset(self._in_flight)

    def send(self, query_id: bytes, dk: Any) -> None:
        """Count the attempt and hand the query to the client."""
        self._in_flight.add(query_id)
        self._ledger.attempted(query_id)
        try:
            self.query.submit(query_id, dk, self._verdict)
        except Exception as exc:  # the client's own failure: the query stays pending
            self._in_flight.discard(query_id)
            log.warning("query %s not sent: %s", query_id.hex()[:8], exc)
            self._on_failed(query_id)

    def _verdict(self, verdict: Any) -> None:
        """The client's thread: note an answer from the regional, pass the verdict on."""
        if self._rounds and str(getattr(verdict, "outcome", "")) in REGIONAL_OUTCOMES:
            self._heard = True  # a plain flag: read by the agent's thread at its next tick
        self._on_verdict(verdict)

    def answered(self, query_id: bytes) -> None:
        """A verdict (of any kind) came back: the query is no longer in flight."""
        self._in_flight.discard(query_id)

    def due(self, now: float) -> bool:
        """Whether a reconnect round is due, or ``retry_interval`` has passed since the
        last round of re-sends."""
        self._settle_rounds(now)
        if self._rounds and now >= self._rounds[0]:
            return True
        return now - self._last_retry >= self.retry_interval

    def reconnected(self, on_screen: Callable[[bytes], bool]) -> None:
        """The link is back: what was in flight over the old connection is lost; re-send
        every pending query now, and again in the reconnect rounds (module doc)."""
        self._in_flight.clear()
        now = self._clock()
        # Always scheduled: a scan accepted just after the reconnect can be dropped too.
        self._rounds = [now + d for d in self.reconnect_rounds]
        self._heard = self._final_round = False
        self.retry(on_screen, force=True)

    @property
    def rounds_left(self) -> int:
        """Reconnect rounds still scheduled (0 once they ended)."""
        return len(self._rounds)

    def _settle_rounds(self, now: float) -> None:
        """The first answer since the reconnect: only the catch-up round is left."""
        if self._heard and self._rounds:
            self._heard = False
            self._rounds = [min(self._rounds[0], now + CATCH_UP)]
            self._final_round = True

    def retry(self, on_screen: Callable[[bytes], bool], *, force: bool = False) -> None:
        """Re-send pending queries not in flight; unless ``force``, skip those for which
        ``on_screen(query_id)`` says the officer is still waiting. When a reconnect round
        is due, it is that round instead: every pending query, in flight or not."""
        now = self._clock()
        self._settle_rounds(now)
        in_round = bool(self._rounds) and now >= self._rounds[0]
        if in_round:
            self._rounds.pop(0)
            if self._final_round:
                self._rounds.clear()
                self._final_round = False
            self.counts["rounds"] += 1
            force = True
        self._last_retry = now
        for e in self._ledger.pending():
            if e.query_id in self._in_flight and not in_round:
                continue
            if not force and on_screen(e.query_id):
                continue
            if in_round:
                self.counts["round_sends"] += 1
            late = not on_screen(e.query_id)
            self._events.write("resend", seq=e.seq, qid=e.query_id.hex(), round=in_round, late=late)
            self.send(e.query_id, self._ledger.sealed_of(e) if late else self._ledger.key_of(e))
