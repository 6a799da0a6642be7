"""The protocol keys provisioning hands out, in the file formats of docs/architecture.md.

- terminal identity: Ed25519 private key, PKCS#8 PEM (``identity.key``);
- regional KEM: X25519, regional signing: Ed25519, private keys PKCS#8 PEM;
- public keys: SubjectPublicKeyInfo PEM (``regional-kem.pub``, ``regional-sign.pub``);
- ``index.key`` / ``audit.key``: 32 random bytes as 64 lowercase hex characters.

These are the writers; the loaders and the base64 form ``terminals.json`` pins
(:func:`firmware.protocol.keys.ed25519_public_b64`) live in ``firmware/protocol/keys.py``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from firmware.errors import SetupError

PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
RAW = serialization.Encoding.Raw


def new_identity() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def new_kem() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


def new_secret_hex() -> str:
    """A 32-byte symmetric key (index key, audit key) as 64 hex characters."""
    return secrets.token_hex(32)


def private_pem(
    key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey, passphrase: bytes | None = None
) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(PEM, PKCS8, enc)


def public_pem(key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(PEM, SPKI)


def fingerprint(raw_b64_key: str) -> str:
    """A short, printable fingerprint of a public key (never print the key itself)."""
    return hashlib.sha256(base64.b64decode(raw_b64_key)).hexdigest()[:16]


def load_ed25519_public(pem: bytes, source: str) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SetupError(f"{source}: not a PEM public key ({exc})") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SetupError(f"{source}: expected an Ed25519 public key (SPKI PEM)")
    return key
