"""Pending document keys sealed to the regional: what the kiosk keeps of a scan on its card.

A kiosk must be able to re-send a pending query after a reboot, yet nothing on its card
may name the document (issue 13, part 4). At acceptance the document key is therefore
sealed to the regional's X25519 KEM key with HPKE base mode (the suite of the session
tickets, :data:`firmware.protocol.session.SUITE`); the kiosk keeps only this *inner box*
and cannot open it again. A re-send wraps the box in a fresh query envelope of type
``0x53`` ("resend", :meth:`~firmware.protocol.session.TerminalSession.seal_query` given a
:class:`SealedDocumentKey`), with the same query id and a *fresh* timestamp and nonce, so
a resend days later is inside the regional's time window and replay refusal still holds
on the outer envelope. The regional opens the outer AEAD with the session, then the box
with its KEM private key (:func:`open_document_key`).

The box is bound to region, terminal id and query id through HPKE's ``info``: a box moved
to another terminal's topic, or under another query id, does not open. Its plaintext is
the canonical document key padded with zero bytes to :data:`BOX_PLAIN_LEN`, so every box
(and so every resend) has one size whatever the document.

Layout: ``enc(32) ‖ ChaCha20-Poly1305 ciphertext(BOX_PLAIN_LEN + 16)`` = :data:`BOX_LEN`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
PENDING_INFO = b"fieldterm/v1 pending "
#: The longest canonical key is ``SSS|C|`` + 22 characters = 28 bytes; padded to 32.
BOX_PLAIN_LEN = 32
BOX_LEN = 32 + BOX_PLAIN_LEN + 16


@dataclass(frozen=True)
class SealedDocumentKey:
    """A document key only the regional can open (the bytes of an inner box)."""

    box: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.box, bytes) or len(self.box) != BOX_LEN:
            raise EnvelopeError(f"sealed document key: must be {BOX_LEN} bytes")

    def __repr__(self) -> str:
        return f"SealedDocumentKey({self.box[:4].hex()}..., {len(self.box)} bytes)"


def pending_info(region: str, terminal_id: str, query_id: bytes) -> bytes:
    """HPKE ``info`` of a pending box: binds it to region, terminal and query id."""
    return (
        PENDING_INFO
        + region.encode("ascii")
        + b"\0"
        + terminal_id.encode("ascii")
        + b"\0"
        + query_id
    )


def seal_document_key(
    kem_public: X25519PublicKey, region: str, terminal_id: str, query_id: bytes, dk: DocumentKey
) -> SealedDocumentKey:
    """Seal ``dk`` for the regional (one X25519 operation); the sender cannot open it."""
    if len(query_id) != 16:
        raise EnvelopeError("query_id: must be 16 bytes")
    plain = dk.canonical()
    if len(plain) > BOX_PLAIN_LEN:
        raise EnvelopeError(f"document key: {len(plain)} bytes, at most {BOX_PLAIN_LEN}")
    plain += bytes(BOX_PLAIN_LEN - len(plain))
    box = SUITE.encrypt(plain, kem_public, info=pending_info(region, terminal_id, query_id))
    return SealedDocumentKey(box)


def open_document_key(
    kem_private: X25519PrivateKey, region: str, terminal_id: str, query_id: bytes, box: bytes
) -> DocumentKey:
    """The regional side: the document key in ``box``; EnvelopeError (reason ``pending``)
    if it is not a box sealed to this key for this region, terminal and query id."""
    if len(box) != BOX_LEN:
        raise EnvelopeError(
            f"query refused (pending): sealed key is {len(box)} bytes, expected {BOX_LEN}",
            reason="pending",
        )
    try:
        plain = SUITE.decrypt(box, kem_private, info=pending_info(region, terminal_id, query_id))
    except Exception:  # the library raises various errors for bad ciphertexts
        raise EnvelopeError(
            "query refused (pending): sealed document key does not open", reason="pending"
        ) from None
    try:
        state, cat, number = plain.rstrip(b"\0").decode("ascii").split("|")
        return DocumentKey(state, cat, number)
    except ValueError:
        raise EnvelopeError(
            "query refused (pending): bad document key in sealed box", reason="pending"
        ) from None


class PendingSealer:
    """The kiosk's sealer of pending document keys for one region and terminal: what the
    agent's ledger is given (``seal`` at acceptance, ``ref`` to re-send from the outbox)."""

    def __init__(self, kem_public: X25519PublicKey, region: str, terminal_id: str):
        self._kem = kem_public
        self._region = region
        self._tid = terminal_id

    def seal(self, query_id: bytes, dk: DocumentKey) -> bytes:
        """The inner box of ``dk`` for this query id (what the outbox stores)."""
        return seal_document_key(self._kem, self._region, self._tid, query_id, dk).box

    @staticmethod
    def ref(box: bytes) -> SealedDocumentKey:
        """A stored box as the query client takes it (a resend)."""
        return SealedDocumentKey(bytes(box))
