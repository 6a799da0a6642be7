"""``rte`` framing: the 3M RTE unsolicited optical-data block.

``SOH LEN 'O' 'U' STX FLAG line1 CR line2 CR line3 CR ETX BCC``

- ``LEN`` is the number of bytes from ``O`` through ``ETX``;
- ``BCC`` is the XOR of every byte after SOH up to and including ETX (so ``LEN`` too);
- the three lines are padded with ``_``; a document with two MRZ lines leaves the first
  line empty. The flag byte is accepted whatever its value.

A bad BCC or an ETX that is not where ``LEN`` says rejects the frame (a bad frame).
A SOH not followed by a plausible header is junk, and the search for SOH resumes on the
next byte, so a lost byte costs at most one frame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from firmware.scanner.base import Framer, looks_like_mrz_line

NAME = "rte"
SOH, STX, ETX, CR = 0x01, 0x02, 0x03, 0x0D
#: Each line is padded with ``_`` to this width (the longest MRZ line).
LINE_WIDTH = 44
DEFAULT_FLAG = 0x30
#: A whole frame: SOH, LEN (at most 255) and BCC.
MAX_FRAME = 255 + 3
_MIN_LEN = 5  # O U STX FLAG ETX
_HEADER = {2: ord("O"), 3: ord("U"), 4: STX}  # the fixed bytes after SOH LEN
_SOH_RUN = re.compile(rb"\x01+")


def _plausible(head: bytes | bytearray) -> bool:
    """Whether ``head`` (SOH and what follows it, so far) can still begin an ``OU`` block."""
    if len(head) > 1 and head[1] < _MIN_LEN:
        return False
    return all(head[k] == v for k, v in _HEADER.items() if k < len(head))


def bcc(data: bytes) -> int:
    """XOR of ``data`` (the bytes after SOH up to and including ETX)."""
    x = 0
    for b in data:
        x ^= b
    return x


def encode(lines: Sequence[str], flag: int = DEFAULT_FLAG) -> bytes:
    """The bytes of one RTE block for 2 or 3 MRZ lines."""
    if not 1 <= len(lines) <= 3:
        raise ValueError("an RTE block carries 1 to 3 lines")
    three = [""] * (3 - len(lines)) + list(lines)
    body = b"".join(
        (line.ljust(LINE_WIDTH, "_") if line else "").encode("ascii") + b"\r" for line in three
    )
    after_len = b"OU" + bytes([STX, flag]) + body + bytes([ETX])
    if len(after_len) > 255:
        raise ValueError("lines too long for one RTE block")
    framed = bytes([len(after_len)]) + after_len
    return bytes([SOH]) + framed + bytes([bcc(framed)])


class RteFramer(Framer):
    """3M RTE framer (see module docstring)."""

    name: ClassVar[str] = NAME
    max_buffer: ClassVar[int] = MAX_FRAME

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._buf = bytearray()  # starts with SOH when not empty
        self._buf_start = 0  # stream offset of _buf[0]

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        return bool(self._buf)

    def _consume(self, data: bytes) -> None:
        # Chunks bound the copying a resync does (see _take).
        for k in range(0, len(data), 512):
            chunk = data[k : k + 512]
            self._take(chunk, self.offset)
            self.offset += len(chunk)

    def _take(self, data: bytes, base: int) -> None:
        i = 0
        while i < len(data):
            if not self._buf:
                j = data.find(bytes([SOH]), i)
                if j < 0:
                    self.junk_bytes += len(data) - i
                    return
                if not _plausible(data[j : j + 5]):
                    # a SOH whose next bytes here already rule out a block is junk at once,
                    # a run of SOH too (SOH is no length), without buffering and re-reading
                    k = _SOH_RUN.match(data, j).end()  # type: ignore[union-attr]
                    k = k - 1 if k - j > 1 else k  # the run's last SOH may start a block
                    self.junk_bytes += k - i
                    i = k
                    continue
                self.junk_bytes += j - i
                i = j
                if j + 1 < len(data) and j + data[j + 1] + 3 <= len(data):
                    # the whole block is here: judged in place, nothing copied
                    i += self._judge(data[j : j + data[j + 1] + 3], base + j)
                    continue
                self._buf_start = base + j
            room = MAX_FRAME - len(self._buf)
            take = data[i : i + room]
            self._buf += take
            i += len(take)
            rest = self._scan()
            if rest:
                # Bytes after a false SOH may hold a real frame: read them again.
                base, data, i = base + i - len(rest), rest + data[i:], 0

    def _scan(self) -> bytes:
        """Decode what the buffer holds; return the bytes to read again after a resync."""
        buf = self._buf
        if not self._header_ok():
            return self._resync(1, junk=True)  # a SOH that starts no block
        if len(buf) < 2:
            return b""
        total = buf[1] + 3
        if len(buf) < total:
            return b""
        return self._resync(self._judge(bytes(buf[:total]), self._buf_start))

    def _judge(self, block: bytes, at: int) -> int:
        """Decode one whole block (SOH to BCC, its header plausible) found at stream offset
        ``at``; return how many of its bytes are used up: all of them, or only the SOH when
        ETX is not where the length says (the rest is read again)."""
        total = len(block)
        etx_at = total - 2
        if block[etx_at] != ETX:
            self._bad(at, "no ETX where the length byte says")
            return 1
        if bcc(block[1 : etx_at + 1]) != block[etx_at + 1]:
            self._bad(at, "block check character mismatch")
        else:
            self._decode(block[6:etx_at], total)
        return total

    def _header_ok(self) -> bool:
        """Whether the bytes so far can still begin an ``OU`` block."""
        return _plausible(self._buf)

    def _resync(self, drop: int, *, junk: bool = False) -> bytes:
        """Drop ``drop`` bytes; return the rest to read again, emptying the buffer."""
        if junk:
            self.junk_bytes += drop
        rest = bytes(self._buf[drop:])
        self._buf.clear()
        return rest

    def _decode(self, data: bytes, total: int) -> None:
        lines = [p.rstrip(b"_").decode("latin-1") for p in data.split(b"\r")]
        lines = [s for s in lines if s]
        if any(looks_like_mrz_line(s.encode("latin-1")) for s in lines):
            self._emit(lines)
        else:
            self.junk_bytes += total

    def _end_partial(self) -> None:
        if self._buf:
            self._bad(self._buf_start, "frame cut short (idle gap or disconnect)")
            self._buf.clear()
