"""What every framer shares: the document value object, counters and the bounded buffer.

A framer is pure: bytes in, :class:`ScannedDocument` objects out, no I/O and no clock of
its own (``now`` is passed in). Each concrete framer implements ``_consume`` (bytes that
arrived) and ``_end_partial`` (what an idle gap or a lost connection does to a frame in
progress); the base keeps the counters, the stream offset and the error list, and turns
decoded lines into documents through the MRZ engine.

Counters:
- ``junk_bytes``: bytes outside any frame that were dropped (noise, unknown messages);
- ``bad_frames``: frames that could not be decoded (bad BCC, overlong, cut short); each
  one also leaves a :class:`~firmware.errors.FramingError` in :meth:`take_errors`;
- ``documents``: documents produced. A frame that decodes but whose MRZ fails validation
  is still a document (``mrz.valid`` is false), so the officer is asked to rescan.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from firmware.errors import FramingError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from firmware.mrz import MrzResult
else:
    MrzResult = Any

#: Characters of an MRZ line (ICAO 9303 part 3): upper-case letters, digits and the filler.
MRZ_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
#: Line lengths of the MRZ types: TD1 (3 x 30), TD2/MRV-B (2 x 36), TD3/MRV-A (2 x 44).
MRZ_LINE_LENGTHS = (30, 36, 44)
#: How many recent framing errors a framer keeps for the caller to collect.
MAX_KEPT_ERRORS = 16

ParseFn = Callable[[Sequence[str], str], "MrzResult"]


@dataclass(frozen=True)
class ScannedDocument:
    """One document as the scanner sent it: framing name, raw lines and the parsed MRZ."""

    framing: str
    lines: tuple[str, ...]
    mrz: MrzResult

    def to_json(self) -> dict[str, Any]:
        """The ``fieldterm scan --jsonl`` object."""
        return {"framing": self.framing, "lines": list(self.lines), "mrz": self.mrz.to_json()}


def default_parse(lines: Sequence[str], mode: str) -> MrzResult:
    """Parse with the shared MRZ engine (imported lazily: framers stay importable alone)."""
    from firmware.mrz import parse  # noqa: PLC0415

    return parse(lines, mode)


#: One line holding a whole MRZ (2 x 36, 2 x 44, 3 x 30), as some keyboard-wedge readers
#: send it; the MRZ engine's tolerant and repair modes split it, strict mode refuses it.
JOINED_LENGTHS = frozenset({72, 88, 90})


def expected_line_count(length: int) -> int:
    """Lines a document has, judged by the length of its first line (TD1: 3, a joined
    MRZ: 1, else 2)."""
    if length in JOINED_LENGTHS:
        return 1
    return 3 if length <= 33 else 2


def looks_like_mrz_line(text: bytes) -> bool:
    """A line that is probably an MRZ line, read well or badly by the OCR.

    Length near one of the MRZ lengths (or exactly that of a joined MRZ) and mostly MRZ
    characters with at least one filler and no control bytes: a misread line still counts
    (it becomes a document with errors), a status message such as ``OK`` or ``READY``
    does not.
    """
    n = len(text)
    if not (26 <= n <= 48 or n in JOINED_LENGTHS) or b"<" not in text or min(text) < 0x20:
        return False
    good = sum(1 for b in text if b in MRZ_CHARS)
    return good * 10 >= n * 8


class Framer:
    """Base of every framer. Subclasses set ``name`` and ``max_buffer`` and implement hooks."""

    name: ClassVar[str] = "base"
    #: Upper bound of :attr:`buffered`, whatever the input.
    max_buffer: ClassVar[int] = 1024

    def __init__(
        self,
        *,
        mrz_mode: str = "strict",
        idle_timeout: float = 0.5,
        parse: ParseFn | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.mrz_mode = mrz_mode
        self.idle_timeout = idle_timeout
        self._parse: ParseFn = parse or default_parse
        self.junk_bytes = 0
        self.bad_frames = 0
        self.documents = 0
        #: Stream offset of the next byte fed (bytes fed so far).
        self.offset = 0
        self._last_data: float | None = None
        self._errors: deque[FramingError] = deque(maxlen=MAX_KEPT_ERRORS)
        self._out: list[ScannedDocument] = []

    # -- public API -------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> list[ScannedDocument]:
        """Consume bytes received at time ``now``; return the documents they complete."""
        if data:
            # A gap longer than the idle time ends what was pending before this data.
            self._check_idle(now)
            self._consume(bytes(data))
            self._last_data = now
        return self._drain()

    def poll(self, now: float) -> list[ScannedDocument]:
        """Call when no data came: an idle gap ends a partial document or frame."""
        self._check_idle(now)
        return self._drain()

    def flush(self) -> list[ScannedDocument]:
        """End of stream (port closed or unplugged): end whatever is in progress now."""
        self._end_partial()
        return self._drain()

    def take_errors(self) -> list[FramingError]:
        """The framing errors since the last call (at most :data:`MAX_KEPT_ERRORS`)."""
        errs = list(self._errors)
        self._errors.clear()
        return errs

    @property
    def buffered(self) -> int:
        """Bytes currently held for frames in progress (never above :attr:`max_buffer`)."""
        return 0

    @property
    def in_frame(self) -> bool:
        """Whether a frame with a clear start marker (STX, SOH) is in progress."""
        return False

    def counters(self) -> dict[str, int]:
        return {
            "junk_bytes": self.junk_bytes,
            "bad_frames": self.bad_frames,
            "documents": self.documents,
        }

    # -- for subclasses ---------------------------------------------------------------
    def _consume(self, data: bytes) -> None:
        raise NotImplementedError

    def _end_partial(self) -> None:
        """End a frame in progress (idle gap or end of stream)."""

    def _emit(self, lines: Sequence[str]) -> None:
        self.documents += 1
        lines_t = tuple(lines)
        self._out.append(ScannedDocument(self.name, lines_t, self._parse(lines_t, self.mrz_mode)))

    def _bad(self, offset: int, why: str) -> None:
        """Count an undecodable frame; the message names framing and offset, never content."""
        self.bad_frames += 1
        self._errors.append(FramingError(f"{self.name}: frame at byte {offset}: {why}"))

    def _check_idle(self, now: float) -> None:
        if self._last_data is not None and now - self._last_data > self.idle_timeout:
            self._end_partial()
            self._last_data = None

    def _drain(self) -> list[ScannedDocument]:
        out, self._out = self._out, []
        return out
