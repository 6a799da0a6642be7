"""``auto`` framing: pick the framing from the bytes, stick with it until contradicted.

First choice (:func:`sniff`): the earliest complete signature in the bytes seen so far:

- ``rte``: SOH, a length byte, ``OU``, STX;
- ``json``: STX, optional white space, ``{``;
- ``stx``: STX followed by an MRZ character (the vendor byte, if any, comes before);
- ``lines``: at the start of a line, 30 to 44 MRZ characters and a CR or LF.

The bytes seen so far are then replayed into that framer, so the first document is
not lost. Once chosen, the framer is contradicted when it counts junk or a bad frame
since its last document and is not inside a frame of its own; while that lasts, each other framing is tried on the recent
bytes (at most :data:`WINDOW` bytes since the last document), and the first one that
decodes a *valid* MRZ from them takes over, in the order rte, json, stx, lines. (Valid,
because a framing can half-read another one's frames: STX framing reads an RTE block's
lines with their ``_`` padding.)
Every buffer here has a constant bound: the probe, the window and the inner framer's.
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
        if self._contradicted() and (
            any(t in data for t in _TRIAL_TRIGGERS) or 0x01 in self._window
        ):
            switched = self._try_others(now, end=False)
            if switched is not None:
                return switched
        return []

    def poll(self, now: float) -> list[ScannedDocument]:
        if self.inner is None:
            return []
        if self._contradicted() and self._window:
            switched = self._try_others(now, end=True)
            if switched is not None:
                return switched
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
        return docs

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
                real = self._make(name)
                self._use(real)
                docs = real.feed(window, now)
                if end:
                    docs += real.flush()
                return self._delivered(docs)
        return None


def make_framer(name: str, **kwargs: Any) -> Framer:
    """A framer by its configured name: ``auto`` or one of :data:`CANDIDATES`."""
    factories: dict[str, Callable[..., Framer]] = {NAME: AutoFramer, **CANDIDATES}
    try:
        factory = factories[name]
    except KeyError:
        raise ValueError(f"unknown framing {name!r}; use one of {', '.join(factories)}") from None
    return factory(**kwargs)
