"""One load-generator design for every request/response benchmark.

A *submitter* sends one query and later calls ``done(ok)`` from whatever thread its
transport delivers on. :class:`WindowedLoad` keeps ``window`` queries outstanding per
submitter (a simulated terminal), sends the next from the completion callback, and
records each round trip with ``perf_counter_ns``. The echo baselines and the sealed
service are driven by the same class, so they differ only in what the far side does.

A run's own ``lost`` counts queries still outstanding when it ended; a :class:`Tally`
counts every query a system was sent over all its runs (warm-up included), so nothing
sent can go unaccounted for between runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


def pooled(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs of one system as one: counts and time summed, latencies together."""
    return LoadResult(
        completed=sum(r.completed for r in results),
        errors=sum(r.errors for r in results),
        lost=sum(r.lost for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_us=np.concatenate([r.latencies_us for r in results]) if results else np.empty(0),
    )


@dataclass
class Tally:
    """Every query one system was sent: ``sent``, then ``answered`` (right or ``wrong``) or
    nothing. ``lost`` is what was sent and never answered. Thread-safe."""

    sent: int = 0
    answered: int = 0
    wrong: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    def on_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def on_answer(self, right: bool) -> None:
        with self._lock:
            self.answered += 1
            self.wrong += not right

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"sent": self.sent, "answered": self.answered, "wrong": self.wrong}

    def counted(self, submit: Submitter) -> Submitter:
        """``submit`` with every query and answer counted here (answers: ``done(ok)``)."""

        def wrapped(done: Done) -> None:
            self.on_sent()

            def answered(ok: bool) -> None:
                self.on_answer(ok)
                done(ok)

            submit(answered)

        return wrapped


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
        # the last window gets ``grace`` after the duration; a counted run has 600 s
        limit = (self.duration if self.duration is not None else 600.0) + self.grace
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
