"""Faults a real scanner line shows, decided by one seeded random source: junk between
documents and frames cut short.

Junk never contains the framing control bytes and ends with CR LF, so every document
after it is still readable; a truncated frame is followed (by the simulator) by a gap
longer than the reader's idle time, as when an officer pulls a document out mid-read.
Nothing here does I/O: the same seed gives the same faults.
"""

from __future__ import annotations

import random

from firmware.errors import SetupError
from host_tools.sim.frames import CONTROL_BYTES


class FaultInjector:
    """``junk_rate``: the chance of junk before a document; ``truncate_rate``: the chance
    that a document's frame is cut short. Both within [0, 1]."""

    def __init__(
        self, rng: random.Random, *, junk_rate: float = 0.0, truncate_rate: float = 0.0
    ) -> None:
        for name, rate in (("junk_rate", junk_rate), ("truncate_rate", truncate_rate)):
            if not 0.0 <= rate <= 1.0:
                raise SetupError(f"{name} must be within [0, 1]")
        self.rng = rng
        self.junk_rate = junk_rate
        self.truncate_rate = truncate_rate

    def junk_now(self) -> bool:
        """Whether junk goes on the line before this document."""
        return bool(self.junk_rate) and self.rng.random() < self.junk_rate

    def junk(self, size: int | None = None) -> bytes:
        """Noise: ``size`` (else 1 to 32) random bytes less the framing controls, then CR LF."""
        n = size if size is not None else self.rng.randint(1, 32)
        noise = (self.rng.randrange(256) for _ in range(n))
        return bytes(b for b in noise if b not in CONTROL_BYTES) + b"\r\n"

    def cut(self, frame: bytes) -> int | None:
        """Where to cut this frame short (1 <= cut < its length), or None to send it whole."""
        if not (self.truncate_rate and self.rng.random() < self.truncate_rate):
            return None
        return self.rng.randrange(1, max(2, len(frame) - 1))
