"""Response value object and its versioned encoding (the plaintext inside the AEAD).

Encoding v2: one byte ``0x02``, compact UTF-8 JSON
``{"o": outcome, "l": list_version?, "r": record?, "e": reason?}``, then zero bytes up to a
multiple of :data:`RESPONSE_BLOCK` (at least one block). The padding makes a POSSIBLE_MATCH,
which carries the record, the same size on the wire as a NO_MATCH, so the broker cannot tell
hits from size. JSON never contains a NUL byte, so the padding is unambiguous. The query id
is not in the body: it is bound as AEAD associated data (see session.py, docs/protocol.md).

``"a": [seq, mac hex]`` (issue 14) is the terminal's audit head as the regional last
recorded it (``[0, ""]``: none on record), sent only to a query that carried its own head.
A body with it is padded to at least :data:`ANCHOR_BLOCKS` blocks, so a hit (whose record
and anchor together pass one block) is still as long as a miss.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from firmware.errors import EnvelopeError

OUTCOMES = ("NO_MATCH", "POSSIBLE_MATCH", "ERROR")
RECORD_FIELDS = ("status", "reporting_country", "reference", "document_type", "reported_on")
BODY_VERSION = 2
#: Response bodies are padded to a multiple of this (a hit's record fits in one block).
RESPONSE_BLOCK = 256
#: Blocks a body with an anchor is padded to, at least (the longest hit with one fits).
ANCHOR_BLOCKS = 2


@dataclass(frozen=True)
class Response:
    """The regional answer to one query. ``record`` only for ``POSSIBLE_MATCH``."""

    query_id: bytes
    outcome: str
    list_version: int | None = None
    record: Mapping[str, str] | None = None
    reason: str | None = None
    #: The terminal's audit head on the regional's record: (seq, MAC hex); (0, "") none.
    anchor: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.query_id, bytes) or len(self.query_id) != 16:
            raise EnvelopeError("query_id: must be 16 bytes")
        if self.outcome not in OUTCOMES:
            raise EnvelopeError(f"outcome: must be one of {', '.join(OUTCOMES)}")
        if self.list_version is not None and (
            not isinstance(self.list_version, int) or self.list_version < 0
        ):
            raise EnvelopeError("list_version: must be a non-negative integer")
        if self.record is not None:
            for k, v in self.record.items():
                if k not in RECORD_FIELDS or not isinstance(v, str):
                    raise EnvelopeError(f"record: unknown field or non-string value ({k!r})")
        if self.anchor is not None:
            a = self.anchor
            if (
                not isinstance(a, tuple)
                or len(a) != 2
                or not isinstance(a[0], int)
                or isinstance(a[0], bool)
                or not 0 <= a[0] < 2**64
                or not isinstance(a[1], str)
                or len(a[1]) not in (0, 64)
                or any(c not in "0123456789abcdef" for c in a[1])
            ):
                raise EnvelopeError("anchor: must be [seq, 64 hex digits] (or [0, ''])")


def encode_response_body(response: Response) -> bytes:
    """Versioned body bytes (without the query id, which is AAD)."""
    doc: dict[str, Any] = {"o": response.outcome}
    if response.list_version is not None:
        doc["l"] = response.list_version
    if response.record is not None:
        doc["r"] = dict(response.record)
    if response.reason is not None:
        doc["e"] = response.reason
    if response.anchor is not None:
        doc["a"] = list(response.anchor)
    raw = bytes([BODY_VERSION]) + json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    least = ANCHOR_BLOCKS if response.anchor is not None else 1
    size = max(least, -(-len(raw) // RESPONSE_BLOCK)) * RESPONSE_BLOCK
    return raw + bytes(size - len(raw))


def decode_response_body(query_id: bytes, body: bytes) -> Response:
    """Inverse of :func:`encode_response_body`; :class:`EnvelopeError` on any defect."""
    if not body or body[0] != BODY_VERSION:
        raise EnvelopeError("response body: unknown version")
    if len(body) % RESPONSE_BLOCK:
        raise EnvelopeError(f"response body: not padded to {RESPONSE_BLOCK}-byte blocks")
    try:
        doc = json.loads(body[1:].rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("response body: not valid JSON") from None
    if not isinstance(doc, dict) or not set(doc) <= {"o", "l", "r", "e", "a"}:
        raise EnvelopeError("response body: unexpected structure")
    record = doc.get("r")
    if record is not None and not isinstance(record, dict):
        raise EnvelopeError("response body: record must be an object")
    reason = doc.get("e")
    if reason is not None and not isinstance(reason, str):
        raise EnvelopeError("response body: reason must be a string")
    lv = doc.get("l")
    if isinstance(lv, bool):
        raise EnvelopeError("response body: list_version must be an integer")
    a = doc.get("a")
    if a is not None and (not isinstance(a, list) or len(a) != 2):
        raise EnvelopeError("response body: anchor must be [seq, mac]")
    anchor = (a[0], a[1]) if a is not None else None
    return Response(query_id, doc.get("o", ""), lv, record, reason, anchor)
