"""Key file loading (formats fixed in docs/architecture.md).

Private keys: PKCS#8 PEM (optionally encrypted with a passphrase); public keys: SPKI PEM;
secrets: 64 hex characters (32 bytes). Every failure raises :class:`SetupError` (or
:class:`ConfigError`) naming the file and what to do. Key material never appears in messages.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from firmware.errors import ConfigError, SetupError

_FIX = "run `fieldterm provision` to create it, or fix the path in the config"


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SetupError(f"{path}: key file not found; {_FIX}") from None
    except OSError as exc:
        raise SetupError(
            f"{path}: cannot read key file ({exc.strerror}); check permissions"
        ) from None


def _load_private(path: str | Path, passphrase: bytes | None, kind: type, label: str) -> Any:
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise SetupError(
            f"{path}: {label} private key is encrypted; give its passphrase"
            if passphrase is None
            else f"{path}: {label} private key is not encrypted; give no passphrase"
        ) from None
    except ValueError:
        raise SetupError(
            f"{path}: not a readable PKCS#8 PEM {label} private key (or wrong passphrase); {_FIX}"
        ) from None
    if not isinstance(key, kind):
        raise SetupError(f"{path}: holds a {type(key).__name__}, expected a {label} private key")
    return key


def _load_public(path: str | Path, kind: type, label: str) -> Any:
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SetupError(f"{path}: not a readable SPKI PEM {label} public key; {_FIX}") from None
    if not isinstance(key, kind):
        raise SetupError(f"{path}: holds a {type(key).__name__}, expected a {label} public key")
    return key


def load_ed25519_private(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Ed25519 private key from a PKCS#8 PEM file."""
    key: Ed25519PrivateKey = _load_private(path, passphrase, Ed25519PrivateKey, "Ed25519")
    return key


def load_x25519_private(path: str | Path, passphrase: bytes | None = None) -> X25519PrivateKey:
    """X25519 private key from a PKCS#8 PEM file."""
    key: X25519PrivateKey = _load_private(path, passphrase, X25519PrivateKey, "X25519")
    return key


def load_ed25519_public(path: str | Path) -> Ed25519PublicKey:
    """Ed25519 public key from an SPKI PEM file."""
    key: Ed25519PublicKey = _load_public(path, Ed25519PublicKey, "Ed25519")
    return key


def load_x25519_public(path: str | Path) -> X25519PublicKey:
    """X25519 public key from an SPKI PEM file."""
    key: X25519PublicKey = _load_public(path, X25519PublicKey, "X25519")
    return key


def load_secret(path: str | Path) -> bytes:
    """32 bytes from a file holding 64 hex characters (surrounding whitespace ignored)."""
    text = _read(path).strip()
    try:
        raw = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            "must hold exactly 64 hex characters (32 random bytes); "
            "create it with `fieldterm provision`",
            source=str(path),
        )
    return raw


def ed25519_public_b64(pub: Ed25519PublicKey) -> str:
    """Raw 32-byte public key as standard base64 (for config/registry files)."""
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def ed25519_public_from_b64(s: str) -> Ed25519PublicKey:
    """Inverse of :func:`ed25519_public_b64`; :class:`ConfigError` if not 32 base64 bytes."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("not a base64 Ed25519 public key (32 bytes)", field="public_key")
    return Ed25519PublicKey.from_public_bytes(raw)
