"""Document keys: what a query names, and the keyed hashes built over it.

A :class:`DocumentKey` is the non-nominal identity of a travel document: issuing state,
document category (first letter of the MRZ document code) and number. Every keyed hash
in the system (regional index, audit logs, offline list) is over :meth:`canonical`.

(Written by the SLTD engineer to the contract in docs/architecture.md because it was
still missing at 16:00; the protocol engineer owns it and may replace it.)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from firmware.errors import BadDataError

CATEGORIES = frozenset("PIACV")
_STATE = re.compile(r"[A-Z]{1,3}")
_NUMBER = re.compile(r"[0-9A-Z]{1,22}")


@dataclass(frozen=True, slots=True)
class DocumentKey:
    """``(issuing_state, category, number)``, validated at construction (fillers removed)."""

    issuing_state: str
    category: str
    number: str

    def __post_init__(self) -> None:
        if not isinstance(self.issuing_state, str) or not _STATE.fullmatch(self.issuing_state):
            raise BadDataError("issuing_state: must be 1-3 letters A-Z without fillers")
        if not isinstance(self.category, str) or self.category not in CATEGORIES:
            raise BadDataError("category: must be one of P, I, A, C, V")
        if not isinstance(self.number, str) or not _NUMBER.fullmatch(self.number):
            raise BadDataError("number: must be 1-22 characters 0-9 A-Z without fillers")

    def canonical(self) -> bytes:
        """``b"<state>|<category>|<number>"`` (ASCII): the input of every keyed hash."""
        return f"{self.issuing_state}|{self.category}|{self.number}".encode("ascii")

    @classmethod
    def from_mrz(cls, result: Any) -> DocumentKey:
        """From a parsed MRZ (``MrzResult``): fillers dropped, category = first code letter."""
        state = (result.issuing_state or "").replace("<", "")
        code = result.document_code or ""
        number = (result.document_number or "").replace("<", "")
        return cls(state, code[:1], number)


def keyed_hash64(key: bytes, dk: DocumentKey) -> int:
    """BLAKE2b with an 8-byte digest, keyed with ``key``, over ``dk.canonical()``;
    the digest read as an unsigned big-endian integer."""
    digest = hashlib.blake2b(dk.canonical(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big")
