"""One load-generator design for every request/response benchmark.

A *submitter* sends one query and later calls ``done(ok)`` from whatever thread its
transport delivers on. :class:`WindowedLoad` keeps ``window`` queries outstanding per
submitter (a simulated terminal), sends the next from the completion callback, and
records each round trip with ``perf_counter_ns``. The echo baseline and the sealed
service are driven by the same class, so they differ only in what the far side does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Done = Callable[[bool], None]
Submitter = Callable[[Done], None]


@dataclass(frozen=True)
class LoadResult:
    completed: int
    errors: int
    lost: int  # sent but not answered when the run ended
    seconds: float
    latencies_us: np.ndarray

    @property
    def qps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile_us(self, q: float) -> float:
        if not self.latencies_us.size:
            return float("nan")
        return float(np.percentile(self.latencies_us, q))

    def summary(self, prefix: str) -> dict[str, float | int]:
        return {
            f"{prefix}_qps": self.qps,
            f"{prefix}_p50_us": self.percentile_us(50),
            f"{prefix}_p99_us": self.percentile_us(99),
            f"{prefix}_completed": self.completed,
            f"{prefix}_errors": self.errors,
            f"{prefix}_lost": self.lost,
        }


class WindowedLoad:
    """Drive submitters with a window each until ``total`` queries or ``duration`` seconds."""

    def __init__(
        self,
        submitters: Sequence[Submitter],
        *,
        window: int,
        total: int | None = None,
        duration: float | None = None,
        warmup: int = 0,
        grace: float = 5.0,
    ):
        if total is None and duration is None:
            raise ValueError("give total, duration or both")
        self.submitters = list(submitters)
        self.window = max(1, window)
        self.total = total
        self.duration = duration
        self.warmup = warmup
        self.grace = grace
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def run(self) -> LoadResult:
        if self.warmup:
            WindowedLoad(
                self.submitters, window=self.window, total=self.warmup, grace=self.grace
            ).run()
        lat: list[int] = []
        state = {"sent": 0, "done": 0, "errors": 0, "stop": False}
        deadline = None if self.duration is None else time.monotonic() + self.duration
        lock = self._lock
        finished = self._finished

        def send(sub: Submitter) -> None:
            with lock:
                if state["stop"] or (self.total is not None and state["sent"] >= self.total):
                    if state["done"] + state["errors"] >= state["sent"]:
                        finished.set()
                    return
                state["sent"] += 1
            t0 = time.perf_counter_ns()

            def done(ok: bool) -> None:
                dt = time.perf_counter_ns() - t0
                with lock:
                    if ok:
                        state["done"] += 1
                        lat.append(dt)
                    else:
                        state["errors"] += 1
                    if deadline is not None and time.monotonic() >= deadline:
                        state["stop"] = True
                send(sub)

            sub(done)

        t_start = time.perf_counter()
        for sub in self.submitters:
            for _ in range(self.window):
                send(sub)
        limit = (self.duration or 0) + self.grace if self.total is None else None
        if self.total is not None:
            limit = (self.duration or 600.0) + self.grace
        finished.wait(limit)
        with lock:
            state["stop"] = True
            elapsed = time.perf_counter() - t_start
            lost = state["sent"] - state["done"] - state["errors"]
            result = LoadResult(
                completed=state["done"],
                errors=state["errors"],
                lost=lost,
                seconds=elapsed,
                latencies_us=np.array(lat, dtype=np.float64) / 1000.0,
            )
        return result
