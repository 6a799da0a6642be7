"""What one certificate's junk may cost the others (issue 13 part 5): a negative cache of
bad tickets and a per-terminal refusal rate limit, checked before any public-key work.

A query whose ticket is not yet open costs the regional an HPKE open and an Ed25519
verify (~0.3 ms); the paho thread serves every terminal in turn, so 60 000 junk tickets
from one kiosk's certificate used to delay everyone else's queries by many seconds (3 of
20 honest queries timed out). Two cheap checks come first now:

* **Negative cache**: a ticket refused for a reason of its own (it does not open, names
  another terminal, no pinned key signed it, its lifetime is too long, it expired) is
  remembered by SHA-256 with that reason for ``negative_ttl`` seconds, so the same bad
  ticket again is refused with one hash and one dict lookup, under the same reason. The
  cache is bounded and dropped when terminals.json changes (an added terminal's key may
  make a refused ticket good). Such a refusal still spends a token.
* **Refusal rate limit**: each terminal (the topic's id, which the broker's ACL binds to
  the certificate) has a token bucket of refusals, ``refusal_burst`` deep, refilled at
  ``refusal_rate`` per second. Once it is empty, that terminal's queries whose ticket is
  not already open are refused unopened (reason ``rate_limited``) until tokens return.
  Queries of an already-open session still go through (they cost AEAD only), so a kiosk
  whose certificate is not the flooding one is never affected, and the flooding kiosk's
  own open session keeps working.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Refusal reasons that belong to the ticket itself (the same bytes fail the same way).
TICKET_REASONS = frozenset(
    {"ticket", "terminal_mismatch", "unknown_terminal", "signature", "lifetime", "expired"}
)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RefusalGuard:
    """``check(terminal, payload, has_session)`` before opening; ``refused(...)`` after a
    refusal. Used from the paho thread only (not thread-safe)."""

    def __init__(
        self,
        *,
        refusal_burst: int = 50,
        refusal_rate: float = 5.0,
        negative_ttl: float = 600.0,
        max_negative: int = 100_000,
        max_terminals: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.burst = float(refusal_burst)
        self.rate = float(refusal_rate)
        self.negative_ttl = negative_ttl
        self.max_negative = max_negative
        self.max_terminals = max_terminals
        self._clock = clock
        self._bad: OrderedDict[bytes, tuple[float, str]] = OrderedDict()  # hash -> until, why
        self.hits = 0
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @staticmethod
    def ticket_of(payload: bytes) -> bytes | None:
        """The ticket bytes of a query envelope (layout in docs/protocol.md), or None."""
        if len(payload) < 4:
            return None
        tlen = int.from_bytes(payload[2:4], "big")
        return payload[4 : 4 + tlen] if len(payload) >= 4 + tlen else None

    def _bucket(self, terminal: str, now: float) -> _Bucket:
        b = self._buckets.get(terminal)
        if b is None:
            b = self._buckets[terminal] = _Bucket(self.burst, now)
            while len(self._buckets) > self.max_terminals:
                self._buckets.popitem(last=False)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
            b.at = now
            self._buckets.move_to_end(terminal)
        return b

    def check(self, terminal: str, payload: bytes, has_session: Callable[[bytes], bool]) -> str:
        """``""`` to go on and open the query, else why to refuse it unopened:
        ``rate_limited``, or the reason the same ticket was refused before (negative cache
        hit, counted in :attr:`hits`)."""
        ticket = self.ticket_of(payload)
        if ticket is None or has_session(ticket):
            return ""  # malformed (refused by the session layer at no cost) or already open
        now = self._clock()
        if self._bucket(terminal, now).tokens < 1.0:
            return "rate_limited"
        if self._bad:
            digest = hashlib.sha256(ticket).digest()
            hit = self._bad.get(digest)
            if hit is not None:
                until, reason = hit
                if now < until:
                    self.hits += 1
                    return reason
                del self._bad[digest]
        return ""

    def refused(self, terminal: str, payload: bytes, reason: str, *, known: bool = False) -> None:
        """A query of ``terminal`` was refused for ``reason``: one token less, and a bad
        ticket is remembered (``known``: it came from the cache, nothing to add)."""
        now = self._clock()
        b = self._bucket(terminal, now)
        b.tokens = max(0.0, b.tokens - 1.0)
        if reason in TICKET_REASONS and not known:
            ticket = self.ticket_of(payload)
            if ticket is not None:
                digest = hashlib.sha256(ticket).digest()
                self._bad[digest] = (now + self.negative_ttl, reason)
                self._bad.move_to_end(digest)
                while len(self._bad) > self.max_negative:
                    self._bad.popitem(last=False)

    def limited(self, terminal: str) -> bool:
        """Whether ``terminal``'s refusal bucket is empty now (for health and tests)."""
        b = self._buckets.get(terminal)
        if b is None:
            return False
        return min(self.burst, b.tokens + (self._clock() - b.at) * self.rate) < 1.0

    def forget_tickets(self) -> None:
        """terminals.json changed: a refused ticket may be good now."""
        self._bad.clear()

    def __len__(self) -> int:
        return len(self._bad)
