"""Traffic for the fleet simulator: when each lane scans, and which document.

Scans at a crossing are a Poisson process per lane, with bursts when a bus or a train
arrives: a group of neighbouring lanes (one site's) then sees a batch of travellers
within a minute or so. :func:`scan_schedule` draws both from one seeded generator, so a
run can be repeated exactly:

- background scans: a Poisson process of rate ``rate * (1 - burst_share)`` over the whole
  fleet, each on a uniformly chosen lane (the superposition of one Poisson process per
  lane, which it equals in distribution);
- bursts: arrivals at rate ``rate * burst_share / burst_size`` (from one span before the
  start, so the rate is steady over the whole run); each picks ``burst_lanes``
  consecutive lanes and puts ``burst_size`` scans on them, uniformly over ``burst_span``
  seconds.

:class:`DocumentPicker` decides hit or miss per scan (``hit_rate``; SLTD reports about 1
in 10,000) and picks a listed or an unlisted sample document; the expected outcome comes
from which sample the document was taken from (``sltd generate --listed-sample /
--unlisted-sample``), never from the regional.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HIT_RATE = 1e-4  # SLTD: about one hit in 10,000 searches


@dataclass(frozen=True)
class TrafficModel:
    """Offered load: ``rate`` scans/s in total, a share of them in bursts."""

    rate: float
    burst_share: float = 0.3
    burst_size: int = 40
    burst_lanes: int = 8
    burst_span: float = 30.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate: must be > 0 scans/s, not {self.rate!r}")
        if not 0.0 <= self.burst_share < 1.0:
            raise ValueError(f"burst_share: must be in [0, 1), not {self.burst_share!r}")
        if self.burst_size < 1 or self.burst_lanes < 1 or not self.burst_span > 0:
            raise ValueError("burst_size, burst_lanes and burst_span must be positive")


def scan_schedule(
    model: TrafficModel, lanes: int, duration: float, rng: random.Random
) -> list[tuple[float, int]]:
    """``(t, lane)`` for every scan in ``[0, duration)``, sorted by time."""
    if lanes < 1:
        raise ValueError(f"lanes: need at least one, not {lanes}")
    out: list[tuple[float, int]] = []
    base = model.rate * (1.0 - model.burst_share)
    t = rng.expovariate(base) if base > 0 else duration
    while t < duration:
        out.append((t, rng.randrange(lanes)))
        t += rng.expovariate(base)
    if model.burst_share > 0:
        arrivals = model.rate * model.burst_share / model.burst_size
        # bursts begin one span early, so the offered rate is steady from t = 0 to the end
        t = -model.burst_span + rng.expovariate(arrivals)
        width = min(model.burst_lanes, lanes)
        while t < duration:
            first = rng.randrange(lanes)
            for _ in range(model.burst_size):
                at = t + rng.uniform(0.0, model.burst_span)
                if 0.0 <= at < duration:
                    out.append((at, (first + rng.randrange(width)) % lanes))
            t += rng.expovariate(arrivals)
    out.sort()
    return out


def offered_rate(schedule: Sequence[tuple[float, int]], t0: float, t1: float) -> float:
    """Scans per second the schedule offers in ``[t0, t1)``."""
    times = [t for t, _ in schedule]
    n = bisect.bisect_left(times, t1) - bisect.bisect_left(times, t0)
    return n / (t1 - t0) if t1 > t0 else 0.0


@dataclass(frozen=True)
class Document:
    """A sample document's key and the outcome the list says it must get."""

    dk: Any  # firmware.protocol.dockey.DocumentKey
    expected: str  # POSSIBLE_MATCH or NO_MATCH


class DocumentPicker:
    """Hit or miss per scan, then a sample document of that kind."""

    def __init__(
        self,
        listed: Sequence[Sequence[str]],
        unlisted: Sequence[Sequence[str]],
        hit_rate: float = HIT_RATE,
    ):
        from firmware.mrz import parse  # noqa: PLC0415
        from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

        if not 0.0 <= hit_rate <= 1.0:
            raise ValueError(f"hit_rate: must be in [0, 1], not {hit_rate!r}")
        if not unlisted or (hit_rate > 0 and not listed):
            raise ValueError("need listed and unlisted sample documents (sltd generate)")

        def keys(docs: Sequence[Sequence[str]], expected: str) -> list[Document]:
            out = []
            for i, lines in enumerate(docs):
                r = parse(list(lines))
                if not r.valid:
                    raise ValueError(f"sample document {i} ({expected}) does not parse")
                out.append(Document(DocumentKey.from_mrz(r), expected))
            return out

        self.hit_rate = hit_rate
        self.listed = keys(listed, "POSSIBLE_MATCH")
        self.unlisted = keys(unlisted, "NO_MATCH")

    def pick(self, rng: random.Random) -> Document:
        if self.listed and rng.random() < self.hit_rate:
            return rng.choice(self.listed)
        return rng.choice(self.unlisted)
