"""Kiosk telemetry: the kiosk's health, signed by the kiosk and sealed to the alert desk.

The operator's console needs each kiosk's health (link, offline list, clock, scanner,
outbox); the broker must learn nothing from it. So every kiosk publishes one message every
:data:`INTERVAL` seconds on ``ft/v1/<region>/telemetry/<terminal>`` (QoS 0, not retained),
always :data:`SIZE` bytes of plaintext, sealed (HPKE base mode, the suite of the session
tickets and the alerts) to the desk's X25519 key and signed inside with the kiosk's Ed25519
identity key (HPKE base mode does not authenticate the sender). The broker sees the same
size at the same rate from every kiosk, whatever its state.

Wire::

    payload = 0x01 (version) ‖ 0x54 ("T") ‖ HPKE enc(32) ‖ ciphertext
    HPKE info = "fieldterm/v1 telemetry " ‖ region ‖ 0x00 ‖ terminal ‖ 0x00 ‖ version ‖ type
    plaintext = JSON {"body": {"v", "region", "terminal", "seq", "t", "health"}, "sig": b64}
                ‖ zero bytes up to SIZE

``sig`` is Ed25519 over the body's canonical JSON (sorted keys, no spaces); ``seq`` counts
from 1 per agent start (with ``boot``, random per start) so the console can drop a replay.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from firmware.errors import EnvelopeError
from firmware.protocol.session import SUITE
from firmware.protocol.topics import PREFIX, validate_id

VERSION = 1
TYPE_TELEMETRY = 0x54  # "T"
HEADER = bytes([VERSION, TYPE_TELEMETRY])
SIZE = 1536
INTERVAL = 2.0
BODY_FIELDS = ("v", "region", "terminal", "boot", "seq", "t", "health")


def topic(region: str, terminal: str) -> str:
    return f"{PREFIX}/{validate_id('region', region)}/telemetry/{validate_id('terminal', terminal)}"


def topic_filter(region: str) -> str:
    return f"{PREFIX}/{validate_id('region', region)}/telemetry/+"


def _info(region: str, terminal: str) -> bytes:
    return b"fieldterm/v1 telemetry " + region.encode() + b"\0" + terminal.encode() + b"\0" + HEADER


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(body), sort_keys=True, separators=(",", ":")).encode()


def seal(
    desk: X25519PublicKey,
    identity: Ed25519PrivateKey,
    *,
    region: str,
    terminal: str,
    boot: str,
    seq: int,
    t: float,
    health: Mapping[str, Any],
) -> bytes:
    """One telemetry message; ValueError if ``health`` does not fit in :data:`SIZE`."""
    body = {
        "v": VERSION, "region": region, "terminal": terminal, "boot": boot, "seq": seq,
        "t": round(t, 3), "health": dict(health),
    }  # fmt: skip
    doc = {"body": body, "sig": base64.b64encode(identity.sign(_canonical(body))).decode()}
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if len(plain) > SIZE:
        raise ValueError(f"telemetry of {len(plain)} bytes exceeds {SIZE}")
    plain += bytes(SIZE - len(plain))
    return HEADER + SUITE.encrypt(plain, desk, info=_info(region, terminal))


def open_(
    desk: X25519PrivateKey,
    region: str,
    terminal: str,
    payload: bytes,
    identity_keys: Sequence[Ed25519PublicKey],
) -> dict[str, Any]:
    """The verified body of a telemetry message from ``terminal`` (its topic names it);
    :class:`EnvelopeError` with a reason unless it opens, has the fixed size, is signed by
    one of ``identity_keys`` and names this region and terminal."""
    if len(payload) < 2 + 32 + 16 or payload[:1] != HEADER[:1]:
        raise EnvelopeError("telemetry: truncated or unknown version", reason="version")
    if payload[1] != TYPE_TELEMETRY:
        raise EnvelopeError("telemetry: not a telemetry message", reason="type")
    try:
        plain = SUITE.decrypt(payload[2:], desk, info=_info(region, terminal))
    except (InvalidTag, ValueError):
        raise EnvelopeError("telemetry: does not open with this desk key", reason="aead") from None
    if len(plain) != SIZE:
        raise EnvelopeError(f"telemetry: {len(plain)} bytes, not {SIZE}", reason="size")
    try:
        doc = json.loads(plain.rstrip(b"\0").decode("utf-8"))
        body, sig = doc["body"], base64.b64decode(str(doc["sig"]), validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error):
        raise EnvelopeError("telemetry: not valid JSON", reason="structure") from None
    if not isinstance(body, dict) or set(body) != set(BODY_FIELDS):
        raise EnvelopeError("telemetry: unexpected fields", reason="structure")
    for key in identity_keys:
        try:
            key.verify(sig, _canonical(body))
            break
        except InvalidSignature:
            continue
    else:
        raise EnvelopeError(f"telemetry: not signed by {terminal}", reason="signature")
    if body["region"] != region or body["terminal"] != terminal:
        raise EnvelopeError("telemetry: for another region or terminal", reason="terminal")
    if not isinstance(body["health"], dict) or not isinstance(body["seq"], int):
        raise EnvelopeError("telemetry: unexpected structure", reason="structure")
    return body
