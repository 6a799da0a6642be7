"""Sending sealed queries, and sending pending ones again.

A query that got ``TIMEOUT`` or ``ERROR`` stays in the outbox and is re-sent with its
*same* query id (the regional answers a repeated id idempotently): every
``retry_interval`` while the link is up, and at once when the link comes back. What was
in flight over a lost connection is forgotten, so it is re-sent too. A query is never
re-sent while its first copy is still in flight, nor (unless forced) while the officer
is waiting for it on screen, where the state machine's own deadline governs.

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

    @property
    def in_flight(self) -> frozenset[bytes]:
        """Query ids sent over the current connection and not yet answered."""
        return frozenset(self._in_flight)

    def send(self, query_id: bytes, dk: Any) -> None:
        """Count the attempt and hand the query to the client."""
        self._in_flight.add(query_id)
        self._ledger.attempted(query_id)
        try:
            self.query.submit(query_id, dk, self._on_verdict)
        except Exception as exc:  # the client's own failure: the query stays pending
            self._in_flight.discard(query_id)
            log.warning("query %s not sent: %s", query_id.hex()[:8], exc)
            self._on_failed(query_id)

    def answered(self, query_id: bytes) -> None:
        """A verdict (of any kind) came back: the query is no longer in flight."""
        self._in_flight.discard(query_id)

    def due(self, now: float) -> bool:
        """Whether ``retry_interval`` has passed since the last round of re-sends."""
        return now - self._last_retry >= self.retry_interval

    def reconnected(self, on_screen: Callable[[bytes], bool]) -> None:
        """The link is back: what was in flight over the old connection is lost; re-send
        every pending query now."""
        self._in_flight.clear()
        self.retry(on_screen, force=True)

    def retry(self, on_screen: Callable[[bytes], bool], *, force: bool = False) -> None:
        """Re-send pending queries not in flight; unless ``force``, skip those for which
        ``on_screen(query_id)`` says the officer is still waiting."""
        self._last_retry = self._clock()
        for e in self._ledger.pending():
            if e.query_id in self._in_flight:
                continue
            if not force and on_screen(e.query_id):
                continue
            late = not on_screen(e.query_id)
            self._events.write("resend", seq=e.seq, qid=e.query_id.hex(), late=late)
            self.send(e.query_id, self._ledger.sealed_of(e) if late else self._ledger.key_of(e))
