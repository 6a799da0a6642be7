"""The kiosk's reconnect policy: exponential backoff with a jittered start.

When the regional broker restarts, every kiosk of the region loses its link in the same
instant. With a fixed first delay (paho's ``reconnect_delay_set(1, 5)`` alone) they would
all come back in the same instant too, and the TLS handshakes of a whole fleet would hit
the broker at once. Each link therefore draws its own first delay, uniformly within
``jitter`` of ``first`` seconds, and doubles it after every failed attempt up to ``cap``:
the same rule paho applies between ``reconnect_delay_set(min, max)`` and a CONNACK, so
:class:`~firmware.transport.mqtt.MqttLink` hands :meth:`ReconnectPolicy.first_delay` to
paho, and an external event loop (the fleet simulator) walks :meth:`ReconnectPolicy.delays`
itself; both produce the same sequence.

    policy = ReconnectPolicy()              # first 1 s +/- 50 %, cap 5 s
    d0 = policy.first_delay(random.random)  # one draw per link
    list(itertools.islice(policy.delays(d0), 5))  # d0, 2*d0, 4*d0, 5, 5 (for d0 = 1.0)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ReconnectPolicy:
    """Backoff ``first * (1 +/- jitter)``, doubled per failed attempt, at most ``cap`` s."""

    first: float = 1.0
    cap: float = 5.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.first > 0:
            raise ValueError(f"first: must be > 0 s, not {self.first!r}")
        if not self.cap >= self.first:
            raise ValueError(f"cap: must be >= first ({self.first} s), not {self.cap!r}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter: must be in [0, 1), not {self.jitter!r}")

    def first_delay(self, rand: Callable[[], float] = random.random) -> float:
        """One link's first delay: uniform in ``first * [1 - jitter, 1 + jitter)``,
        never above ``cap``."""
        return min(self.cap, self.first * (1.0 - self.jitter + 2.0 * self.jitter * rand()))

    def delays(self, first_delay: float) -> Iterator[float]:
        """The waits before attempts 1, 2, ...: ``first_delay`` doubled each time, capped
        (paho's own rule after ``reconnect_delay_set(first_delay, cap)``)."""
        d = first_delay
        while True:
            yield d
            d = min(d * 2.0, self.cap)


#: The policy every kiosk link uses (MqttLink's reconnect_min=1, reconnect_max=5).
KIOSK_RECONNECT = ReconnectPolicy()
