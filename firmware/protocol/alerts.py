"""Hit alerts: signed by the regional service, sealed to the alert desk, sent at a fixed rate.

A POSSIBLE_MATCH must reach the people who act on it (the alert desk), but the broker in
between must learn neither that a hit happened nor where. So the regional service does not
publish an alert when a hit happens: every ``alert_interval`` seconds it publishes one
*batch* on ``ft/v1/<region>/alert``, with up to :data:`MAX_PER_BATCH` alerts or none, always
padded to :data:`BATCH_SIZE` and sealed (HPKE base mode, the suite of the session tickets)
to the desk's X25519 key. The broker sees the same size at the same rate whether there
were hits or not. Each alert inside is signed with the regional Ed25519 signing key, so
the desk knows the regional service wrote it (HPKE base mode does not authenticate the
sender). See docs/protocol.md, "Hit alerts".

Wire::

    payload = 0x01 (version) ‖ 0x41 ("A") ‖ HPKE enc(32) ‖ ciphertext
    HPKE info = "fieldterm/v1 alert " ‖ region ‖ 0x00 ‖ version ‖ type
    plaintext = JSON {"region", "src", "seq", "t", "alerts": [{"alert": {...}, "sig": b64}]}
                ‖ zero bytes up to BATCH_SIZE

An alert body: ``{v, region, terminal, query_id, dkh, reference, status,
reporting_country, list_version, t}`` and ``late`` (true when the query came as a resend,
type ``0x53``: the kiosk had already shown an offline answer or UNKNOWN for that scan;
absent from a regional older than the flag, which means false) (the keyed hash ``dkh``,
never the document number);
``sig`` is Ed25519 over its canonical JSON (sorted keys, no spaces). ``src`` names the
regional process (random per start) and ``seq`` counts its batches from 1, so a desk can
tell a lost batch from another process or a restart.

The alert sequence (issue 14): a body may also carry the optional fields of
:data:`OPTIONAL_FIELDS`, signed like the others. ``epoch`` names the regional's durable
alert queue (random, made with it) and ``aseq`` numbers the alert in it (1, 2, ...; never
reused). The batch then carries ``epoch``, ``low`` (the smallest ``aseq`` still queued:
every alert below it was handed to the broker) and ``high`` (the last ``aseq`` given out),
so the desk can name the alerts it never got, across regional restarts, and notice a queue
that was lost (a new epoch). A batch without them (an older regional) still opens.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from firmware.errors import EnvelopeError
from firmware.protocol.session import SUITE
from firmware.protocol.topics import validate_id

VERSION = 1
TYPE_ALERT = 0x41  # "A"
HEADER = bytes([VERSION, TYPE_ALERT])
#: Plaintext size of every batch: room for MAX_PER_BATCH alerts of the longest fields.
BATCH_SIZE = 4096
MAX_PER_BATCH = 6
ALERT_FIELDS = (
    "v",
    "region",
    "terminal",
    "query_id",
    "dkh",
    "reference",
    "status",
    "reporting_country",
    "list_version",
    "t",
)
#: Fields a body may carry besides ALERT_FIELDS (signed like them); anything else is refused,
#: so no new field (a document number, say) slips through unnoticed. Add new ones here.
OPTIONAL_FIELDS = ("epoch", "aseq", "late")
#: Optional fields of a batch (the alert queue's epoch and bounds, see the module doc).
BATCH_OPTIONAL = ("epoch", "low", "high")
_INFO = b"fieldterm/v1 alert "


def _info(region: str) -> bytes:
    return _INFO + validate_id("region", region).encode() + b"\x00" + HEADER


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(body), sort_keys=True, separators=(",", ":")).encode()


def sign_alert(key: Ed25519PrivateKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"alert": body, "sig": base64 Ed25519 over the canonical JSON}``."""
    missing = [f for f in ALERT_FIELDS if f not in body]
    if missing:
        raise ValueError(f"alert body lacks {', '.join(missing)}")
    return {"alert": dict(body), "sig": base64.b64encode(key.sign(_canonical(body))).decode()}


def verify_alert(key: Ed25519PublicKey, item: Any, region: str) -> dict[str, Any]:
    """The alert body of a signed ``item``; :class:`EnvelopeError` unless the signature
    holds, the body has exactly the alert fields and it is for ``region``."""
    if not isinstance(item, dict) or set(item) != {"alert", "sig"}:
        raise EnvelopeError("alert: expected {alert, sig}", reason="structure")
    body, sig = item["alert"], item["sig"]
    if (
        not isinstance(body, dict)
        or not set(ALERT_FIELDS) <= set(body)
        or not set(body) <= {*ALERT_FIELDS, *OPTIONAL_FIELDS}
    ):
        raise EnvelopeError("alert: unexpected fields", reason="structure")
    if "late" in body and not isinstance(body["late"], bool):
        raise EnvelopeError("alert: 'late' must be true or false", reason="structure")
    try:
        key.verify(base64.b64decode(str(sig), validate=True), _canonical(body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise EnvelopeError("alert: signature does not verify", reason="signature") from None
    if body["region"] != region:
        raise EnvelopeError(f"alert: for region {body['region']!r}", reason="region")
    return body


@dataclass(frozen=True)
class Batch:
    """One opened batch: ``alerts`` are still the signed items (see :func:`verify_alert`)."""

    region: str
    src: str
    seq: int
    t: float
    alerts: tuple[dict[str, Any], ...]
    #: The regional alert queue's epoch and bounds (None from an older regional).
    epoch: str | None = None
    low: int | None = None
    high: int | None = None


def seal_batch(
    desk: X25519PublicKey,
    region: str,
    *,
    src: str,
    seq: int,
    t: float,
    alerts: Sequence[Mapping[str, Any]],
    epoch: str | None = None,
    low: int | None = None,
    high: int | None = None,
) -> bytes:
    """Seal up to :data:`MAX_PER_BATCH` signed alerts (none is a valid, full-size batch);
    ``epoch``/``low``/``high`` describe the regional's alert queue (module docstring)."""
    if len(alerts) > MAX_PER_BATCH:
        raise ValueError(f"at most {MAX_PER_BATCH} alerts per batch, not {len(alerts)}")
    doc = {
        "region": region,
        "src": src,
        "seq": seq,
        "t": round(t, 3),
        "alerts": [dict(a) for a in alerts],
    }
    if epoch is not None:
        doc.update(epoch=epoch, low=low, high=high)
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if len(plain) > BATCH_SIZE:
        raise ValueError(f"alert batch of {len(plain)} bytes exceeds {BATCH_SIZE}")
    plain += bytes(BATCH_SIZE - len(plain))
    return HEADER + SUITE.encrypt(plain, desk, info=_info(region))


def open_batch(desk: X25519PrivateKey, region: str, payload: bytes) -> Batch:
    """Open a sealed batch; :class:`EnvelopeError` naming what is wrong otherwise."""
    if len(payload) < 2 + 32 + 16 or payload[:1] != HEADER[:1]:
        raise EnvelopeError("alert batch: truncated or unknown version", reason="version")
    if payload[1] != TYPE_ALERT:
        raise EnvelopeError("alert batch: not an alert message", reason="type")
    try:
        plain = SUITE.decrypt(payload[2:], desk, info=_info(region))
    except (InvalidTag, ValueError):
        raise EnvelopeError(
            "alert batch: does not open with this desk key for this region", reason="aead"
        ) from None
    if len(plain) != BATCH_SIZE:
        raise EnvelopeError(f"alert batch: {len(plain)} bytes, not {BATCH_SIZE}", reason="size")
    try:
        doc = json.loads(plain.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("alert batch: not valid JSON", reason="structure") from None
    base = {"region", "src", "seq", "t", "alerts"}
    if (
        not isinstance(doc, dict)
        or set(doc) not in (base, base | set(BATCH_OPTIONAL))
        or not isinstance(doc["src"], str)
        or not isinstance(doc["alerts"], list)
        or not isinstance(doc["seq"], int)
        or isinstance(doc["seq"], bool)
        or not isinstance(doc["t"], (int, float))
    ):
        raise EnvelopeError("alert batch: unexpected structure", reason="structure")
    epoch, low, high = doc.get("epoch"), doc.get("low"), doc.get("high")
    if epoch is not None and not (
        isinstance(epoch, str)
        and isinstance(low, int)
        and isinstance(high, int)
        and _count(low)
        and _count(high)
        and low <= high + 1
    ):
        raise EnvelopeError("alert batch: bad epoch, low or high", reason="structure")
    if doc["region"] != region:
        raise EnvelopeError(f"alert batch: for region {doc['region']!r}", reason="region")
    return Batch(
        region, doc["src"], doc["seq"], float(doc["t"]), tuple(doc["alerts"]), epoch, low, high
    )


def _count(v: Any) -> bool:
    """A non-negative integer (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
