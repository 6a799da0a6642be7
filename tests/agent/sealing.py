"""A real pending-key sealer for agent tests, with the regional's side to open its boxes."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.protocol.dockey import DocumentKey
from firmware.protocol.pending import PendingSealer, SealedDocumentKey, open_document_key

REGION = "uto"
TERMINAL = "kiosk-001"
KEM_PRIVATE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
SEALER = PendingSealer(KEM_PRIVATE.public_key(), REGION, TERMINAL)


def opened(ref: Any, query_id: bytes) -> DocumentKey:
    """What the regional reads from a resend's sealed key (a plain key passes through)."""
    if isinstance(ref, SealedDocumentKey):
        return open_document_key(KEM_PRIVATE, REGION, TERMINAL, query_id, ref.box)
    assert isinstance(ref, DocumentKey)
    return ref
