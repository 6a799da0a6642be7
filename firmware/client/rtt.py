"""The query timeout, adapted to the measured round trip (RFC 6298's estimator).

    est = RoundTripEstimator(floor=2.0, ceiling=10.0)
    est.sample(0.84)          # an answered query's round trip (s), sent once only
    est.timeout()             # clamp(srtt + 4 * rttvar, floor, ceiling) times the backoff
    est.backoff()             # a query timed out on a live link: double it (to the ceiling)

RFC 6298 section 2 with its constants (alpha 1/8, beta 1/4, K 4). The first sample sets
``srtt = r`` and ``rttvar = r / 2``; each later one ``rttvar = (1 - beta) rttvar + beta
|srtt - r|``, then ``srtt = (1 - alpha) srtt + alpha r``. Before any sample the timeout is
the floor (the configured ``query_timeout``), so a good link behaves exactly as before.

Karn's rule (section 5, RFC 6298 section 3): only an answer to a query sent *once* is a
sample; a query sealed again (a re-send, a time hint) could be answered for either copy.
A timeout doubles the timeout until the next sample (section 5.5), so a link that turned
slow before any sample still gets answers instead of a row of TIMEOUTs. The floor keeps
the officer's screen no slower on a good link; the ceiling bounds the wait on a bad one
(the offline list answers on screen in the meantime; docs/protocol.md).

Not thread-safe on its own: the query client calls it under its lock.
"""

from __future__ import annotations

ALPHA = 1 / 8
BETA = 1 / 4
K = 4.0
#: RFC 6298's clock granularity G: rttvar never adds less than this to the timeout.
GRANULARITY = 0.01


class RoundTripEstimator:
    """Smoothed round trip, its variation, and the timeout they give (module doc)."""

    def __init__(self, floor: float, ceiling: float):
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, got {floor} and {ceiling}")
        self.floor = floor
        self.ceiling = ceiling
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.samples = 0
        self._backoff = 1.0

    def sample(self, rtt: float) -> None:
        """One measured round trip (s) of a query sent once."""
        r = max(0.0, float(rtt))
        if self.srtt is None or self.rttvar is None:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - r)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        self.samples += 1
        self._backoff = 1.0

    def backoff(self) -> None:
        """A query timed out while the link was up: double the timeout it had (RFC 6298
        5.5: the clamped value, so a first timeout at the floor gives twice the floor),
        up to the ceiling."""
        if self.timeout() < self.ceiling:
            self._backoff *= 2.0

    def raw(self) -> float:
        """``srtt + max(G, K * rttvar)`` (RFC 6298 2.3), or the floor before any sample."""
        if self.srtt is None or self.rttvar is None:
            return self.floor
        return self.srtt + max(GRANULARITY, K * self.rttvar)

    def timeout(self) -> float:
        """The timeout for the next query: the raw value clamped, times the backoff,
        clamped again."""
        return min(self.ceiling, max(self.floor, self.raw()) * self._backoff)

    def snapshot(self) -> dict[str, float | int | None]:
        """For logs and status: the estimate and the timeout it gives now."""
        return {
            "srtt_s": None if self.srtt is None else round(self.srtt, 4),
            "rttvar_s": None if self.rttvar is None else round(self.rttvar, 4),
            "timeout_s": round(self.timeout(), 4),
            "samples": self.samples,
            "backoff": self._backoff,
        }
