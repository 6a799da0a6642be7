"""Key file loading (formats fixed in docs/architecture.md).

Private keys: PKCS#8 PEM (optionally encrypted with a passphrase); public keys: SPKI PEM;
secrets: 64 hex characters (32 bytes). Every failure raises :class:`SetupError` (or
:class:`ConfigError`) naming the file and what to do. Key material never appears in messages.

The keys fieldterm writes (unencrypted PKCS#8 v1 and SPKI for X25519 and Ed25519) are, by
RFC 8410, a fixed DER prefix followed by the 32 raw key bytes; those are read directly, which
keeps cryptography's general ``serialization`` module (RSA, DSA, EC, SSH; about 1.6 MB
resident) out of the kiosk agent. Any other PEM (encrypted, PKCS#8 v2, another algorithm)
goes through that general loader, imported only then.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

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


# RFC 8410 section 10.3 (private) and section 4 (public): the DER bytes before the raw key.
_PKCS8_PREFIX: dict[type, bytes] = {
    Ed25519PrivateKey: bytes.fromhex("302e020100300506032b657004220420"),
    X25519PrivateKey: bytes.fromhex("302e020100300506032b656e04220420"),
}
_SPKI_PREFIX: dict[type, bytes] = {
    Ed25519PublicKey: bytes.fromhex("302a300506032b6570032100"),
    X25519PublicKey: bytes.fromhex("302a300506032b656e032100"),
}


def _fixed_der(data: bytes, label: bytes, prefix: bytes) -> bytes | None:
    """The 32 raw key bytes when ``data`` is one PEM block ``label`` holding exactly
    ``prefix`` + 32 bytes; None for anything else (the general loader decides)."""
    lines = data.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != b"-----BEGIN " + label + b"-----":
        return None
    if lines[-1].strip() != b"-----END " + label + b"-----":
        return None
    try:
        der = base64.b64decode(b"".join(x.strip() for x in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(prefix) + 32 or not der.startswith(prefix):
        return None
    return der[len(prefix) :]


def _load_private(path: str | Path, passphrase: bytes | None, kind: type, label: str) -> Any:
    data = _read(path)
    raw = None if passphrase is not None else _fixed_der(data, b"PRIVATE KEY", _PKCS8_PREFIX[kind])
    if raw is not None:
        return kind.from_private_bytes(raw)  # type: ignore[attr-defined]
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

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
    raw = _fixed_der(data, b"PUBLIC KEY", _SPKI_PREFIX[kind])
    if raw is not None:
        return kind.from_public_bytes(raw)  # type: ignore[attr-defined]
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

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
    raw = pub.public_bytes_raw()
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
