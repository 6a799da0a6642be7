"""The offline list's manifest: what a list is, signed by the regional's Ed25519 key.

File (``manifest.json`` of a full list, ``delta.json`` of a delta)::

    {"manifest": BODY, "sig": base64 Ed25519 over DOMAIN ‖ canonical JSON of BODY}

``DOMAIN`` keeps a manifest signature from ever passing for another message the same
key signs (hit alerts). BODY (every field required, no others)::

    v             1 (this format)
    region        region id
    version       list version (the SLTD store's, monotonic); a kiosk refuses an older one
    created       unix time the regional built it (the list's age counts from here)
    kind          "full" or "delta"
    base_version  null for a full list; the full list a delta applies to
    records       records in the list (after the delta, for a delta)
    filter        full:  {"type": "binary_fuse", "layout", "fingerprint_bits", "arity",
                          "key_id", "shard_bits"} (each shard's parameters are in the
                          filter file's table, which the chunk hashes cover)
                  delta: {"type": "delta", "key_id", "added", "removed"}
    size          payload bytes (filter file or delta file)
    chunk_size    bytes per chunk (the last may be shorter)
    chunks        SHA-256 (hex) of every chunk, in order
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.offline.errors import (
    ListChunkError,
    ListFormatError,
    ListKeyError,
    ListRegionError,
    ListSignatureError,
)
from firmware.protocol.topics import ID_RE, validate_id

FORMAT = 1
DOMAIN = b"fieldterm/v1 offline-list manifest\x00"
KINDS = ("full", "delta")
MIN_CHUNK = 256
MAX_CHUNK = 4 << 20
MAX_MANIFEST_BYTES = 4 << 20  # about 60 000 chunks
_FIELDS = frozenset(
    {"v", "region", "version", "created", "kind", "base_version", "records", "filter"}
    | {"size", "chunk_size", "chunks"}
)
_FILTER_FIELDS = {
    "binary_fuse": frozenset(
        {"type", "layout", "fingerprint_bits", "arity", "key_id", "shard_bits"}
    ),
    "delta": frozenset({"type", "key_id", "added", "removed"}),
}


@dataclass(frozen=True)
class Manifest:
    """A verified manifest (construct through :func:`verify_manifest` or :meth:`from_body`)."""

    region: str
    version: int
    created: float
    kind: str
    base_version: int | None
    records: int
    filter: Mapping[str, Any]
    size: int
    chunk_size: int
    chunks: tuple[str, ...]

    @property
    def key_id(self) -> bytes:
        return bytes.fromhex(str(self.filter["key_id"]))

    def body(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "region": self.region,
            "version": self.version,
            "created": self.created,
            "kind": self.kind,
            "base_version": self.base_version,
            "records": self.records,
            "filter": dict(self.filter),
            "size": self.size,
            "chunk_size": self.chunk_size,
            "chunks": list(self.chunks),
        }

    def chunk_span(self, index: int) -> tuple[int, int]:
        """``(start, end)`` byte offsets of chunk ``index`` in the payload."""
        if not 0 <= index < len(self.chunks):
            raise ListChunkError(f"chunk {index}: out of range 0..{len(self.chunks) - 1}")
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)

    def check_chunk(self, index: int, data: bytes) -> None:
        """:class:`ListChunkError` unless ``data`` is chunk ``index`` as the manifest says."""
        start, end = self.chunk_span(index)
        if len(data) != end - start:
            raise ListChunkError(f"chunk {index}: {len(data)} bytes, expected {end - start}")
        if hashlib.sha256(data).hexdigest() != self.chunks[index]:
            raise ListChunkError(f"chunk {index}: SHA-256 differs from the manifest")

    def check_key(self, key_id: bytes) -> None:
        """:class:`ListKeyError` unless the list was built under the key named ``key_id``."""
        if self.key_id != key_id:
            raise ListKeyError(
                f"list {self.version}: built under another offline-list key "
                f"(id {self.key_id.hex()}, this kiosk holds {key_id.hex()})"
            )

    @classmethod
    def from_body(cls, body: Any) -> Manifest:
        """Validate a manifest body; :class:`ListFormatError` naming the field."""
        if not isinstance(body, dict):
            raise ListFormatError("manifest: body is not an object")
        missing, extra = sorted(_FIELDS - set(body)), sorted(set(body) - _FIELDS)
        if missing or extra:
            raise ListFormatError(f"manifest: missing {missing} / unknown {extra} fields")
        if body["v"] != FORMAT:
            raise ListFormatError(f"manifest.v: format {body['v']!r} is not {FORMAT}")
        region = body["region"]
        try:
            validate_id("region", region)
        except ValueError:
            raise ListFormatError(f"manifest.region: must match {ID_RE}") from None
        version = _int(body, "version", 1)
        created = body["created"]
        if isinstance(created, bool) or not isinstance(created, int | float) or created < 0:
            raise ListFormatError("manifest.created: expected a non-negative unix time")
        kind = body["kind"]
        if kind not in KINDS:
            raise ListFormatError(f"manifest.kind: {kind!r} is not full or delta")
        base = body["base_version"]
        if kind == "full" and base is not None:
            raise ListFormatError("manifest.base_version: must be null for a full list")
        if kind == "delta":
            base = _int(body, "base_version", 1)
            if base >= version:
                raise ListFormatError("manifest.base_version: must be older than version")
        records = _int(body, "records", 0)
        filt = _filter(body["filter"], kind)
        size = _int(body, "size", 1)
        chunk_size = _int(body, "chunk_size", MIN_CHUNK, MAX_CHUNK)
        chunks = body["chunks"]
        if not isinstance(chunks, list) or len(chunks) != math.ceil(size / chunk_size):
            raise ListFormatError("manifest.chunks: expected one hash per chunk of the size")
        for i, c in enumerate(chunks):
            if not (isinstance(c, str) and len(c) == 64 and _is_hex(c) and c == c.lower()):
                raise ListFormatError(f"manifest.chunks[{i}]: not a lower-case SHA-256 hex")
        return cls(
            region, version, created, kind, base, records, filt, size, chunk_size, tuple(chunks)
        )


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ListFormatError(f"manifest.{key}: expected an integer {bound}, got {v!r}")
    return v


def _is_hex(s: str) -> bool:
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return True


def _filter(filt: Any, kind: str) -> dict[str, Any]:
    want = "binary_fuse" if kind == "full" else "delta"
    if not isinstance(filt, dict) or filt.get("type") != want:
        raise ListFormatError(f"manifest.filter.type: a {kind} list needs {want!r}")
    fields = _FILTER_FIELDS[want]
    if set(filt) != fields:
        raise ListFormatError(f"manifest.filter: expected fields {sorted(fields)}")
    kid = filt["key_id"]
    if not (isinstance(kid, str) and len(kid) == 16 and _is_hex(kid)):
        raise ListFormatError("manifest.filter.key_id: expected 16 hex characters")
    for key in sorted(fields - {"type", "key_id"}):
        _int(filt, key, 0)
    if want == "binary_fuse" and filt["fingerprint_bits"] not in (8, 16):
        raise ListFormatError("manifest.filter.fingerprint_bits: must be 8 or 16")
    return dict(filt)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(body), sort_keys=True, separators=(",", ":")).encode()


def chunk_hashes(payload: bytes, chunk_size: int) -> list[str]:
    """SHA-256 hex of every ``chunk_size`` slice of ``payload``."""
    return [
        hashlib.sha256(payload[i : i + chunk_size]).hexdigest()
        for i in range(0, len(payload), chunk_size)
    ]


def sign_manifest(key: Ed25519PrivateKey, manifest: Manifest) -> bytes:
    """The manifest file's bytes: ``{"manifest": body, "sig": ...}`` plus a newline."""
    body = Manifest.from_body(manifest.body()).body()  # never sign what a kiosk would refuse
    sig = key.sign(DOMAIN + _canonical(body))
    doc = {"manifest": body, "sig": base64.b64encode(sig).decode("ascii")}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def verify_manifest(key: Ed25519PublicKey, data: bytes, region: str) -> Manifest:
    """The manifest in ``data`` if its signature holds under ``key`` and it is for
    ``region``; else :class:`ListSignatureError`, :class:`ListRegionError` or
    :class:`ListFormatError`. The signature is checked before any field is trusted."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ListFormatError(f"manifest: {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ListFormatError("manifest: not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"manifest", "sig"}:
        raise ListFormatError("manifest: expected {manifest, sig}")
    body = doc["manifest"]
    if not isinstance(body, dict):
        raise ListFormatError("manifest.manifest: not an object")
    try:
        key.verify(base64.b64decode(str(doc["sig"]), validate=True), DOMAIN + _canonical(body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise ListSignatureError(
            "manifest: signature does not verify with the pinned regional key"
        ) from None
    m = Manifest.from_body(body)
    if m.region != region:
        raise ListRegionError(f"manifest: list of region {m.region!r}, this kiosk is in {region!r}")
    return m
