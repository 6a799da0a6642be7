"""Response value object and its versioned encoding (the plaintext inside the AEAD).

Encoding v2: one byte ``0x02``, compact UTF-8 JSON
``{"o": outcome, "l": list_version?, "r": record?, "e": reason?}``, then zero bytes up to a
multiple of :data:`RESPONSE_BLOCK` (at least one block). The padding makes a POSSIBLE_MATCH,
which carries the record, the same size on the wire as a NO_MATCH, so the broker cannot tell
hits from size. JSON never contains a NUL byte, so the padding is unambiguous. The query id
is not in the body: it is bound as AEAD associated data (see session.py, docs/protocol.md).
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


@dataclass(frozen=True)
class Response:
    """The regional answer to one query. ``record`` only for ``POSSIBLE_MATCH``."""

    query_id: bytes
    outcome: str
    list_version: int | None = None
    record: Mapping[str, str] | None = None
    reason: str | None = None

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


def encode_response_body(response: Response) -> bytes:
    """Versioned body bytes (without the query id, which is AAD)."""
    doc: dict[str, Any] = {"o": response.outcome}
    if response.list_version is not None:
        doc["l"] = response.list_version
    if response.record is not None:
        doc["r"] = dict(response.record)
    if response.reason is not None:
        doc["e"] = response.reason
    raw = bytes([BODY_VERSION]) + json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    size = max(1, -(-len(raw) // RESPONSE_BLOCK)) * RESPONSE_BLOCK
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
    if not isinstance(doc, dict) or not set(doc) <= {"o", "l", "r", "e"}:
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
    return Response(query_id, doc.get("o", ""), lv, record, reason)
