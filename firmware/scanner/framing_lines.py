"""``lines`` framing: plain MRZ lines, each ended by CR, LF or CR LF.

A document is 2 or 3 lines of the lengths a type allows (3 x 30, 2 x 36, 2 x 44), or one
line of 72, 88 or 90 characters holding a whole MRZ (a keyboard-wedge reader). The
first MRZ-like line sets how many lines are expected; a gap longer than the idle time,
a line of another MRZ length or the end of the stream ends a partial document, which
still goes out (with MRZ errors) so the officer rescans. Lines that do not look like MRZ
text (``OK``, blank lines, noise) are junk. A line longer than :data:`MAX_LINE` is a bad
frame and is skipped up to its terminator, so memory stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from firmware.scanner.base import Framer, expected_line_count, looks_like_mrz_line

NAME = "lines"
#: Longest line kept: an MRZ line has at most 44 characters, a joined MRZ 90.
MAX_LINE = 96
_LF = 0x0A
_TERMINATOR_RUN = re.compile(rb"\n+")


def encode(lines: Sequence[str], terminator: bytes = b"\r\n") -> bytes:
    """The bytes a plain-text reader sends for ``lines``."""
    if terminator not in (b"\r", b"\n", b"\r\n"):
        raise ValueError("terminator must be CR, LF or CR LF")
    return b"".join(line.encode("ascii") + terminator for line in lines)


class LinesFramer(Framer):
    """Plain-line framer (see module docstring)."""

    name: ClassVar[str] = NAME
    max_buffer: ClassVar[int] = MAX_LINE * 4

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._line = bytearray()
        self._line_start = 0
        self._skipping = False  # inside an overlong line, dropping up to its terminator
        self._pending: list[str] = []

    @property
    def buffered(self) -> int:
        return len(self._line) + sum(len(s) for s in self._pending)

    def _consume(self, data: bytes) -> None:
        base = self.offset
        self.offset += len(data)
        # CR, LF and CR LF all end a line: one search for LF over a copy with CR as LF
        # keeps this linear whatever the mix (two finds per line would rescan the rest).
        flat = data.replace(b"\r", b"\n")
        i, n = 0, len(flat)
        while i < n:
            if not self._line and not self._skipping and flat[i] == _LF:
                # blank lines (or the LF of a CR LF): the whole run at once
                i = _TERMINATOR_RUN.match(flat, i).end()  # type: ignore[union-attr]
                self._line_start = base + i
                continue
            j = flat.find(b"\n", i)
            end = n if j < 0 else j
            if not self._skipping:
                if len(self._line) + (end - i) > MAX_LINE:
                    self._bad(self._line_start, f"line longer than {MAX_LINE} bytes")
                    self._line.clear()
                    self._skipping = True
                else:
                    self._line += data[i:end]
            if j < 0:
                return
            if not self._skipping:
                self._end_line()
            self._skipping = False
            self._line_start = base + j + 1
            i = j + 1

    def _end_line(self) -> None:
        raw = bytes(self._line)
        self._line.clear()
        text = raw.strip(b" \t")
        if not text:
            return  # the LF of CR LF, or a blank line
        if not looks_like_mrz_line(text):
            self.junk_bytes += len(raw)
            return
        if self._pending and not _same_type(len(self._pending[0].strip()), len(text)):
            self._end_document()
        self._pending.append(raw.decode("latin-1"))
        if len(self._pending) >= expected_line_count(len(self._pending[0].strip())):
            self._end_document()

    def _end_document(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self._emit(lines)

    def _end_partial(self) -> None:
        if self._line and not self._skipping:
            self._end_line()  # a last line sent without a terminator
        self._line.clear()
        self._skipping = False
        self._end_document()


def _same_type(first: int, length: int) -> bool:
    """Whether a line of ``length`` can follow a first line of ``first`` characters."""
    standard = {30, 36, 44, 72, 88, 90}
    if first in standard and length in standard:
        return first == length
    return True  # a misread length: keep the lines together, the MRZ engine reports it
