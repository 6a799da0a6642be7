"""The offline-list key: what a kiosk hashes a document key with before a filter lookup.

It is not the regional's index key: a holder of a kiosk (and its bundle) learns this key,
and with it can test whether a given document is listed, never who or why. The file holds
32 random bytes as 64 hex characters (``firmware.protocol.keys.load_secret``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from firmware.protocol import keys
from firmware.protocol.dockey import DocumentKey, keyed_hash64

_KEY_ID_CONTEXT = b"fieldterm offline list key id"


def load_list_key(path: str | Path) -> bytes:
    """32 bytes from the offline-list key file; :class:`ConfigError`/:class:`SetupError`."""
    return keys.load_secret(path)


def key_id(list_key: bytes) -> bytes:
    """8 bytes that name a list key without revealing it (filter header, manifest)."""
    return hashlib.blake2b(_KEY_ID_CONTEXT, key=list_key, digest_size=8).digest()


def list_hash(list_key: bytes, dk: DocumentKey) -> int:
    """The 64-bit keyed hash a filter is built over and looked up with."""
    return keyed_hash64(list_key, dk)
