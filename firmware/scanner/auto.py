"""``auto`` framing: pick the framing from the bytes, stick with it until contradicted.

First choice (:func:`sniff`): the earliest complete signature in the bytes seen so far:

- ``rte``: SOH, a length byte, ``OU``, STX;
- ``json``: STX, optional white space, ``{``;
- ``stx``: STX followed by an MRZ character (the vendor byte, if any, comes before);
- ``lines``: at the start of a line, 30 to 44 MRZ characters and a CR or LF.

The bytes seen so far are then replayed into that framer, so the first document is
not lost. Once chosen, the framer is contradicted when it counts junk or a bad frame
since its last document and is not inside a frame of its own; while that lasts, each other
framing is tried on the recent bytes (at most :data:`WINDOW` bytes since the last
document), and the first one that decodes a *valid* MRZ from them takes over, in the order
rte, json, stx, lines. (Valid, because a framing can half-read another one's frames: STX
framing reads an RTE block's lines with their ``_`` padding.) The taker-over then reads
the window afresh, so its first document is not lost either.

The trials cost linear time in the bytes: the trial framers are made once, from the
window, at the first contradiction, and then fed each new chunk as it comes (they are
remade from the window after every :data:`WINDOW` bytes, so they never hold more than a
fresh trial would). Replaying the whole window at each line end instead cost a kilobyte
of framing per chunk under a stream of junk.
Every buffer here has a constant bound: the probe, the window, the inner framer's and
the trials'.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from firmware.scanner.base import Framer, ScannedDocument
from firmware.scanner.framing_json import JsonFramer
from firmware.scanner.framing_lines import LinesFramer
from firmware.scanner.framing_rte import RteFramer
from firmware.scanner.framing_stx import StxFramer

NAME = "auto"
#: Framers auto can choose, most specific first.
CANDIDATES: dict[str, type[Framer]] = {
    "rte": RteFramer,
    "json": JsonFramer,
    "stx": StxFramer,
    "lines": LinesFramer,
}
#: Bytes kept while no framing is chosen yet.
PROBE_MAX = 2048
#: Bytes since the last document kept for trying other framings.
WINDOW = 1024
_KEEP_ON_TRIM = 64  # a signature may straddle the trim point

_SIGNATURES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("rte", re.compile(rb"\x01[\x05-\xff]OU\x02")),
    ("json", re.compile(rb"\x02[ \t\r\n]*\{")),
    ("stx", re.compile(rb"\x02[A-Z0-9<]")),
    ("lines", re.compile(rb"(?:^|(?<=[\r\n]))[A-Z0-9<]{30,44}[ \t]*[\r\n]")),
)
_TRIAL_TRIGGERS = (b"\x03", b"\r", b"\n")
_ORDER = list(CANDIDATES)


def sniff(data: bytes) -> tuple[str, int] | None:
    """The framing whose signature starts earliest in ``data``, and where; or ``None``."""
    best: tuple[str, int] | None = None
    for name, pattern in _SIGNATURES:
        m = pattern.search(data)
        if m and (best is None or m.start() < best[1]):
            best = (name, m.start())
    return best


class AutoFramer(Framer):
    """Framing auto-detection over the concrete framers (see module docstring)."""

    name: ClassVar[str] = NAME
    max_buffer: ClassVar[int] = PROBE_MAX + WINDOW + max(c.max_buffer for c in CANDIDATES.values())

    def __init__(self, **kwargs: Any) -> None:
        self._own_junk = 0
        super().__init__(**kwargs)
        self._kwargs = kwargs
        self._probe = bytearray()
        self._window = bytearray()
        self.inner: Framer | None = None
        self._base = {"junk_bytes": 0, "bad_frames": 0}  # counts of replaced framers
        self._mark = (0, 0)  # the inner's (junk, bad) at its last document
        self.switches = 0
        # the other framings, fed since the window's bytes at their making (None: not made)
        self._trials: dict[str, Framer] | None = None
        self._trial_fed = 0  # bytes fed to the trials since they were made from the window
        self._hits: set[str] = set()  # trials that decoded a valid MRZ since then
        self._end_tried = -1  # self.offset when a trial with flush last found nothing

    @property
    def framing(self) -> str | None:
        """The framing in use, or ``None`` before the first signature."""
        return self.inner.name if self.inner else None

    @property
    def buffered(self) -> int:
        inner = self.inner.buffered if self.inner else 0
        return len(self._probe) + len(self._window) + inner

    def counters(self) -> dict[str, int]:
        inner = self.inner.counters() if self.inner else {"junk_bytes": 0, "bad_frames": 0}
        return {
            "junk_bytes": self._own_junk + self._base["junk_bytes"] + inner["junk_bytes"],
            "bad_frames": self._base["bad_frames"] + inner["bad_frames"],
            "documents": self.documents,
        }

    def take_errors(self) -> list[Any]:
        return self.inner.take_errors() if self.inner else []

    # The counters of every framer used so far, so auto reads like any other framer.
    @property
    def junk_bytes(self) -> int:
        return self.counters()["junk_bytes"]

    @junk_bytes.setter
    def junk_bytes(self, value: int) -> None:
        self._own_junk = value

    @property
    def bad_frames(self) -> int:
        return self.counters()["bad_frames"]

    @bad_frames.setter
    def bad_frames(self, value: int) -> None:
        pass  # auto itself never sees a frame; the inner framers count them

    def feed(self, data: bytes, now: float) -> list[ScannedDocument]:
        data = bytes(data)
        if not data:
            return self.poll(now)
        self.offset += len(data)
        if self.inner is None:
            return self._feed_probe(data, now)
        docs = self.inner.feed(data, now)
        if docs:
            return self._delivered(docs)
        self._window += data
        if len(self._window) > WINDOW:
            del self._window[: len(self._window) - WINDOW]
        if self._trials is not None:
            self._feed_trials(data, now)
        if self._contradicted() and (
            self._trials is not None
            or any(t in data for t in _TRIAL_TRIGGERS)
            or 0x01 in self._window
        ):
            if self._trials is None:
                self._make_trials(now)
            if self._hits:
                return self._switch(min(self._hits, key=_ORDER.index), now, end=False)
        return []

    def poll(self, now: float) -> list[ScannedDocument]:
        if self.inner is None:
            return []
        if self._contradicted() and self._window and self._end_tried != self.offset:
            switched = self._try_others(now, end=True)
            if switched is not None:
                return switched
            self._end_tried = self.offset  # the same bytes would find nothing again
        return self._delivered(self.inner.poll(now))

    def flush(self) -> list[ScannedDocument]:
        if self.inner is None:
            self._own_junk += len(self._probe)
            self._probe.clear()
            return []
        return self._delivered(self.inner.flush())

    # -- internals --------------------------------------------------------------------
    def _feed_probe(self, data: bytes, now: float) -> list[ScannedDocument]:
        self._probe += data
        found = sniff(bytes(self._probe))
        if found is None:
            if len(self._probe) > PROBE_MAX:
                drop = len(self._probe) - _KEEP_ON_TRIM
                self._own_junk += drop
                del self._probe[:drop]
            return []
        name, _at = found
        probe, self._probe = bytes(self._probe), bytearray()
        self._use(self._make(name))
        self._window += probe[-WINDOW:]
        return self._delivered(self._inner().feed(probe, now))

    def _make(self, name: str) -> Framer:
        return CANDIDATES[name](**self._kwargs)

    def _inner(self) -> Framer:
        assert self.inner is not None
        return self.inner

    def _use(self, framer: Framer) -> None:
        if self.inner is not None:
            self._base["junk_bytes"] += self.inner.junk_bytes
            self._base["bad_frames"] += self.inner.bad_frames
            self.switches += 1
        self.inner = framer
        self._mark = (0, 0)
        self._drop_trials()

    def _contradicted(self) -> bool:
        inner = self._inner()
        # A frame of the current framing in progress is progress, not contradiction.
        return not inner.in_frame and (inner.junk_bytes, inner.bad_frames) != self._mark

    def _delivered(self, docs: list[ScannedDocument]) -> list[ScannedDocument]:
        if docs:
            self.documents += len(docs)
            inner = self._inner()
            self._mark = (inner.junk_bytes, inner.bad_frames)
            self._window.clear()
            self._drop_trials()
        return docs

    def _drop_trials(self) -> None:
        self._trials, self._trial_fed, self._hits = None, 0, set()

    def _make_trials(self, now: float) -> None:
        """Trial framers of the other framings, fed the window (see the module docstring)."""
        current = self._inner().name
        self._trials = {n: self._make(n) for n in CANDIDATES if n != current}
        self._trial_fed, self._hits = 0, set()
        self._feed_trials(bytes(self._window), now, fresh=True)

    def _feed_trials(self, data: bytes, now: float, *, fresh: bool = False) -> None:
        assert self._trials is not None
        if not fresh:
            self._trial_fed += len(data)
            if self._trial_fed >= WINDOW:  # remade: they hold no more than the window
                self._make_trials(now)
                return
        for name, trial in self._trials.items():
            # one constant time: a gap between chunks must not time a trial's frame out,
            # as it would not in one read of the whole window
            if any(d.mrz is not None and d.mrz.valid for d in trial.feed(data, 0.0)):
                self._hits.add(name)
            trial.take_errors()

    def _switch(self, name: str, now: float, *, end: bool) -> list[ScannedDocument]:
        """``name`` takes over: a new framer of it reads the window afresh."""
        window = bytes(self._window)
        real = self._make(name)
        self._use(real)
        docs = real.feed(window, now)
        if end:
            docs += real.flush()
        return self._delivered(docs)

    def _try_others(self, now: float, *, end: bool) -> list[ScannedDocument] | None:
        window = bytes(self._window)
        current = self._inner().name
        for name in CANDIDATES:
            if name == current:
                continue
            trial = self._make(name)
            got = trial.feed(window, now)
            if end:
                got += trial.flush()
            if any(d.mrz is not None and d.mrz.valid for d in got):
                return self._switch(name, now, end=end)
        return None


def make_framer(name: str, **kwargs: Any) -> Framer:
    """A framer by its configured name: ``auto`` or one of :data:`CANDIDATES`."""
    factories: dict[str, Callable[..., Framer]] = {NAME: AutoFramer, **CANDIDATES}
    try:
        factory = factories[name]
    except KeyError:
        raise ValueError(f"unknown framing {name!r}; use one of {', '.join(factories)}") from None
    return factory(**kwargs)
