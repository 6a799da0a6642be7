"""``stx`` framing: STX, lines each ended by CR, ETX; one optional vendor byte either side.

Covers the DESKO style (a start-of-data byte, STX ... ETX, an end-of-data byte) and the
Access-IS style (FS 0x1C, STX ... ETX, GS 0x1D). The vendor bytes are accepted whatever
their value: one byte held just before STX and one byte right after ETX are not junk.

A frame whose lines contain an MRZ-like line is a document (valid or not). A frame with
no MRZ-like line is another message type of the reader and counts as junk. A frame
longer than :data:`MAX_FRAME`, one cut short by a new STX, an idle gap or the end of
the stream is a bad frame. An STX repeated with nothing between starts no frame: the
repeats are junk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from firmware.scanner.base import Framer, looks_like_mrz_line

NAME = "stx"
STX, ETX, CR, LF = 0x02, 0x03, 0x0D, 0x0A
FS, GS = 0x1C, 0x1D
#: Longest frame body accepted (the DESKO protocol allows up to 1024 characters).
MAX_FRAME = 1024
#: Vendor bytes around the frame for the known styles.
STYLES: dict[str, tuple[bytes, bytes]] = {
    "plain": (b"", b""),
    "accessis": (bytes([FS]), bytes([GS])),
}

_STX_RUN = re.compile(rb"\x02+")
_OUTSIDE, _IN_FRAME, _SKIPPING, _AFTER_ETX = range(4)


def encode(lines: Sequence[str], prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """The bytes of one frame: ``prefix STX line CR line CR [line CR] ETX suffix``."""
    if len(prefix) > 1 or len(suffix) > 1:
        raise ValueError("the vendor prefix and suffix are at most one byte each")
    if any(b in (STX, ETX) for b in prefix + suffix):
        raise ValueError("the vendor bytes cannot be STX or ETX")
    body = b"".join(line.encode("ascii") + b"\r" for line in lines)
    return prefix + bytes([STX]) + body + bytes([ETX]) + suffix


def split_lines(body: bytes) -> list[str]:
    """Frame body to lines: split on CR, tolerate LF, drop empty lines."""
    parts = body.replace(b"\n", b"\r").split(b"\r")
    return [p.decode("latin-1") for p in parts if p.strip(b" \t")]


class StxFramer(Framer):
    """STX/ETX framer (see module docstring)."""

    name: ClassVar[str] = NAME
    max_buffer: ClassVar[int] = MAX_FRAME

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._state = _OUTSIDE
        self._body = bytearray()
        self._frame_start = 0
        self._held = False  # one byte outside a frame that may be a vendor prefix

    @property
    def buffered(self) -> int:
        return len(self._body)

    @property
    def in_frame(self) -> bool:
        return self._state == _IN_FRAME

    def _consume(self, data: bytes) -> None:
        base = self.offset
        self.offset += len(data)
        i, n = 0, len(data)
        while i < n:
            if self._state == _IN_FRAME and not self._body and data[i] == STX:
                # STX again with nothing since the last one: a repeated start byte, junk
                # (not a frame cut short); a whole run at once, so a stream of STX is cheap
                k = _STX_RUN.match(data, i).end()  # type: ignore[union-attr]
                self.junk_bytes += k - i
                self._frame_start = base + k - 1
                i = k
            elif self._state == _IN_FRAME:
                # Copy the run up to the next control byte in one step.
                j = _find_any(data, i, (STX, ETX))
                end = n if j < 0 else j
                if len(self._body) + (end - i) > self.max_buffer:
                    self._bad(self._frame_start, f"frame longer than {self.max_buffer} bytes")
                    self._body.clear()
                    self._state = _SKIPPING
                    continue
                self._body += data[i:end]
                if j < 0:
                    return
                if data[j] == STX:
                    self._bad(self._frame_start, "frame cut short by a new STX")
                    self._start_frame(base + j)
                else:
                    self._end_frame()
                i = j + 1
            elif self._state == _SKIPPING:
                j = _find_any(data, i, (STX, ETX))
                if j < 0:
                    return
                if data[j] == STX:
                    self._start_frame(base + j)
                else:
                    self._state = _AFTER_ETX
                i = j + 1
            else:
                j = data.find(bytes([STX]), i)
                end = n if j < 0 else j
                self._outside(data[i:end])
                if j < 0:
                    return
                self._start_frame(base + j)
                i = j + 1

    def _outside(self, seg: bytes) -> None:
        """Bytes between frames: the vendor end byte, line ends, a held prefix, junk."""
        if not seg:
            return
        if self._state == _AFTER_ETX:
            seg = seg[1:]  # the vendor end byte (or the CR of a CR LF)
            self._state = _OUTSIDE
        count = len(seg) - seg.count(CR) - seg.count(LF)
        if count:
            # Only the last byte before an STX can be a vendor start byte.
            self.junk_bytes += count - 1 + (1 if self._held else 0)
            self._held = True

    def _start_frame(self, at: int) -> None:
        self._held = False
        self._body.clear()
        self._frame_start = at
        self._state = _IN_FRAME

    def _end_frame(self) -> None:
        body = bytes(self._body)
        self._body.clear()
        self._state = _AFTER_ETX
        self._decode(body)

    def _decode(self, body: bytes) -> None:
        """Turn a complete frame body into a document, junk or a bad frame."""
        self._emit_if_mrz(split_lines(body), len(body) + 2)

    def _emit_if_mrz(self, lines: list[str], size: int) -> None:
        if any(looks_like_mrz_line(s.strip().encode("latin-1", "replace")) for s in lines):
            self._emit(lines)
        else:
            self.junk_bytes += size  # another message type of the reader

    def _end_partial(self) -> None:
        if self._state == _IN_FRAME:
            self._bad(
                self._frame_start, "frame cut short (no ETX before an idle gap or disconnect)"
            )
        if self._held:
            self.junk_bytes += 1
        self._held = False
        self._body.clear()
        self._state = _OUTSIDE


def _find_any(data: bytes, start: int, values: tuple[int, ...]) -> int:
    best = -1
    for v in values:
        k = data.find(bytes([v]), start)
        if k >= 0 and (best < 0 or k < best):
            best = k
    return best
