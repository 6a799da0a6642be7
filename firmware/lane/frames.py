"""Lane frames (kiosk -> panel) and acknowledgement frames (panel -> kiosk), CPython side.

Both directions use one fixed-size format under the site key that provisioning gives to
the site's kiosks and panels (docs/annunciator.md, "Frames")::

    header = 0x02 ‖ kind ('L' lane, 'K' ack) ‖ key id u8 ‖ counter u56 ‖ iv(16)   26 bytes
    plain  = len(sender) u8 ‖ sender, zero-padded to 31 ‖ body(32)          64 bytes
      lane body = state u8 ‖ call u32 ‖ zeros
      ack body  = n u8 ‖ n x call u32 (n <= 7) ‖ zeros
    frame  = header ‖ AES-256-CBC(k_enc, iv, plain) ‖ HMAC-SHA256(k_mac, header ‖ ct)
    k_enc = HMAC-SHA256(site key, "fieldterm/v1 lane enc"), k_mac likewise with "mac"

The key id names which of the site's keys sealed the frame, so that during a site key
rotation a receiver holding the previous and the current key (firmware/lane/keyring.py)
picks the right one instead of trying both; it is covered by the MAC like the rest of the
header.

Encrypt-then-MAC with AES-CBC and HMAC-SHA256 because that is what MicroPython's
``cryptolib`` and ``hashlib`` offer on the rp2 and esp32 ports (no CTR, no AEAD). The
plaintext has one length, so no padding is needed and every frame is 122 bytes, whatever
the lane's state. The MicroPython twin is firmware/annunciator/frames.py; both are pinned
by tests/annunciator/vectors/lane_v1.json.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware.errors import EnvelopeError

VERSION = 0x02  # 0x01 had no key id (a u64 counter in its place)
KIND_LANE = 0x4C  # "L"
KIND_ACK = 0x4B  # "K"
HEADER_LEN = 26
PLAIN_LEN = 64
TAG_LEN = 32
FRAME_LEN = HEADER_LEN + PLAIN_LEN + TAG_LEN  # 122
MAX_SENDER = 31
MAX_ACK_CALLS = 7
COUNTER_BITS = 56
MAX_KEY_ID = 255  # key ids run 1..255 and wrap; 0 is never used

IDLE, CALL, ACKED, OUT_OF_SERVICE = 0, 1, 2, 3
STATE_NAMES = {IDLE: "idle", CALL: "call", ACKED: "acked", OUT_OF_SERVICE: "out_of_service"}


class FrameError(EnvelopeError):
    """A frame refused; ``reason`` is one of length, version, kind, key, mac, counter,
    sender, state, body."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"lane frame refused: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


def _hmac(key: bytes, data: bytes) -> bytes:
    h = chmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


@dataclass(frozen=True)
class SiteKeys:
    """The two subkeys of one site key (32 bytes) and that key's id (1..255)."""

    id: int
    enc: bytes
    mac: bytes

    @classmethod
    def derive(cls, site_key: bytes, key_id: int = 1) -> SiteKeys:
        if len(site_key) != 32:
            raise ValueError("site key: must be 32 bytes")
        if not 1 <= key_id <= MAX_KEY_ID:
            raise ValueError(f"site key id: 1 to {MAX_KEY_ID}, not {key_id}")
        return cls(
            key_id,
            _hmac(site_key, b"fieldterm/v1 lane enc"),
            _hmac(site_key, b"fieldterm/v1 lane mac"),
        )


class Opener(Protocol):
    """What opens frames: a key ring (:class:`~firmware.lane.keyring.KeyRing`) or one key."""

    def get(self, key_id: int) -> SiteKeys | None: ...


@dataclass(frozen=True)
class OneKey:
    """A single key as an :class:`Opener` (tests, tools)."""

    keys: SiteKeys

    def get(self, key_id: int) -> SiteKeys | None:
        return self.keys if key_id == self.keys.id else None


@dataclass(frozen=True)
class Opened:
    """A frame that passed its MAC: its kind, counter, sender id, 32-byte body and the id
    of the key that sealed it."""

    kind: int
    counter: int
    sender: str
    body: bytes
    key_id: int


def _plain(sender: str, body: bytes) -> bytes:
    raw = sender.encode("ascii")
    if not 1 <= len(raw) <= MAX_SENDER:
        raise ValueError(f"sender id: 1 to {MAX_SENDER} ASCII characters")
    return bytes([len(raw)]) + raw.ljust(MAX_SENDER, b"\0") + body.ljust(32, b"\0")


def seal(
    keys: SiteKeys, kind: int, counter: int, sender: str, body: bytes, *, iv: bytes | None = None
) -> bytes:
    """One frame of ``kind`` (``iv`` fixed only for golden vectors)."""
    if not 0 <= counter < 1 << COUNTER_BITS:
        raise ValueError(f"counter: must fit in {COUNTER_BITS} bits")
    if len(body) > 32:
        raise ValueError("body: at most 32 bytes")
    iv = os.urandom(16) if iv is None else iv
    header = bytes([VERSION, kind, keys.id]) + counter.to_bytes(7, "big") + iv
    enc = Cipher(algorithms.AES(keys.enc), modes.CBC(iv)).encryptor()
    ct = enc.update(_plain(sender, body)) + enc.finalize()
    return header + ct + _hmac(keys.mac, header + ct)


def open_frame(ring: Opener, data: bytes, kind: int) -> Opened:
    """Check and decrypt a frame of ``kind`` with the key its header names (one ``ring``
    holds); :class:`FrameError` says why it is refused. The counter is *not* judged here:
    see :class:`LaneCounter` and :class:`AckCounter`."""
    if len(data) != FRAME_LEN:
        raise FrameError("length", f"{len(data)} bytes, not {FRAME_LEN}")
    if data[0] != VERSION:
        raise FrameError("version", f"byte 0 is {data[0]:#04x}")
    if data[1] != kind:
        raise FrameError("kind", f"byte 1 is {data[1]:#04x}, not {kind:#04x}")
    keys = ring.get(data[2])
    if keys is None:
        raise FrameError("key", f"byte 2: key id {data[2]} is not one this device holds")
    header, ct, tag = data[:HEADER_LEN], data[HEADER_LEN:-TAG_LEN], data[-TAG_LEN:]
    if not hmac.compare_digest(_hmac(keys.mac, header + ct), tag):
        raise FrameError("mac")
    dec = Cipher(algorithms.AES(keys.enc), modes.CBC(header[10:26])).decryptor()
    plain = dec.update(ct) + dec.finalize()
    n = plain[0]
    if not 1 <= n <= MAX_SENDER:
        raise FrameError("sender", "bad length")
    counter = int.from_bytes(header[3:10], "big")
    return Opened(kind, counter, plain[1 : 1 + n].decode("ascii", "replace"), plain[32:], keys.id)


# -- lane frames ------------------------------------------------------------------------
def lane_body(state: int, call: int) -> bytes:
    if state not in STATE_NAMES:
        raise ValueError(f"state: one of {sorted(STATE_NAMES)}")
    return struct.pack(">BI", state, call)


def seal_lane(
    keys: SiteKeys, counter: int, sender: str, state: int, call: int, *, iv: bytes | None = None
) -> bytes:
    return seal(keys, KIND_LANE, counter, sender, lane_body(state, call), iv=iv)


def parse_lane_body(body: bytes) -> tuple[int, int]:
    state, call = struct.unpack(">BI", body[:5])
    if state not in STATE_NAMES:
        raise FrameError("state", f"{state}")
    return state, call


# -- ack frames -------------------------------------------------------------------------
def ack_body(calls: tuple[int, ...]) -> bytes:
    if len(calls) > MAX_ACK_CALLS:
        raise ValueError(f"at most {MAX_ACK_CALLS} acknowledged calls per frame")
    return bytes([len(calls)]) + b"".join(struct.pack(">I", c) for c in calls)


def seal_ack(
    keys: SiteKeys, counter: int, sender: str, calls: tuple[int, ...], iv: bytes | None = None
) -> bytes:
    return seal(keys, KIND_ACK, counter, sender, ack_body(calls), iv=iv)


def parse_ack_body(body: bytes) -> tuple[int, ...]:
    n = body[0]
    if n > MAX_ACK_CALLS:
        raise FrameError("body", f"{n} calls")
    return struct.unpack(f">{n}I", body[1 : 1 + 4 * n])


# -- counters ---------------------------------------------------------------------------
class LaneCounter:
    """Per-sender lane counters: each frame must carry a counter above the last accepted
    one (the kiosk uses its clock in ms, kept strictly increasing), so a replayed or
    reordered frame is refused."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def accept(self, sender: str, counter: int) -> bool:
        if counter <= self._last.get(sender, -1):
            return False
        self._last[sender] = counter
        return True


class AckCounter:
    """Per-panel ack counters ``epoch u24 ‖ seq u32``: a panel has no clock, so it draws a
    random epoch at boot and counts from there. A frame of the current epoch must have a
    higher seq; a frame of another epoch starts a new one. A replayed frame of an old
    epoch is accepted but can only name calls that are over: a call id is drawn at random
    for each call, and an ack counts only for the caller's current call."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def accept(self, sender: str, counter: int) -> bool:
        epoch, seq = counter >> 32, counter & 0xFFFFFFFF
        last = self._last.get(sender)
        if last is not None and last[0] == epoch and seq <= last[1]:
            return False
        self._last[sender] = (epoch, seq)
        return True
