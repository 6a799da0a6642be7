"""Deterministic keys, rng and sessions for protocol tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.protocol.dockey import DocumentKey

REGION = "eu-west"
TERMINAL = "kiosk-7"
NOW = 1_790_000_000.0
DK = DocumentKey("D", "P", "C01X00T47")
QID = bytes(range(16))


def seeded(label: str) -> bytes:
    """32 bytes derived from ``label`` (test keys only)."""
    return hashlib.sha256(b"fieldterm test " + label.encode()).digest()


def counter_rng(label: str) -> Callable[[int], bytes]:
    """A deterministic rng: SHA-256 stream over ``label`` and a counter."""
    state = {"i": 0}

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{state['i']}".encode()).digest()
            state["i"] += 1
        return out[:n]

    return rng


def identity(label: str = TERMINAL) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seeded("id " + label))


def kem(label: str = REGION) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(seeded("kem " + label))
