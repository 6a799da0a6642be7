"""How the simulated scanner frames a document: pure, lines in, bytes out.

Each framing is one of the firmware's own encoders (firmware/scanner/framing_*.py), so
the simulator speaks exactly what the reader parses; this module binds the simulator's
style choices (the STX style's start/end bytes, the line terminator of plain lines).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from firmware.errors import SetupError
from firmware.scanner import framing_json, framing_lines, framing_rte, framing_stx

FRAMINGS = ("lines", "stx", "rte", "json")
#: Bytes that start, end or split a frame in some framing: never sent as junk.
CONTROL_BYTES = frozenset(b"\x01\x02\x03\r\n")

Encoder = Callable[[Sequence[str]], bytes]


def encoder(framing: str, *, stx_style: str = "accessis", terminator: bytes = b"\r\n") -> Encoder:
    """``encode(lines)`` of a framing, with the simulator's style choices bound."""
    if framing == "lines":
        return lambda lines: framing_lines.encode(lines, terminator)
    if framing == "stx":
        prefix, suffix = framing_stx.STYLES[stx_style]
        return lambda lines: framing_stx.encode(lines, prefix, suffix)
    if framing == "rte":
        return framing_rte.encode
    if framing == "json":
        return framing_json.encode
    raise SetupError(f"unknown framing {framing!r}; use one of {', '.join(FRAMINGS)}")
