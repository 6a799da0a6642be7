"""Lane and acknowledgement frames, MicroPython side (the twin of firmware/lane/frames.py;
the format is documented there and in docs/annunciator.md).

Only modules the rp2 and esp32 ports ship: ``cryptolib`` (AES-256-CBC), ``hashlib``
(SHA-256), ``struct``, ``os.urandom``, ``binascii``. HMAC-SHA256 comes from
micropython-lib's ``hmac`` when it works on this firmware; the PyPI release
(3.4.2.post3) needs ``warnings`` and ``hash.copy()``, which MicroPython 1.29 lacks, so
then it is the RFC 2104 construction below over one-shot ``hashlib.sha256`` objects. The
tests pin it with the RFC 4231 vectors.
"""

import binascii
import hashlib
import os
import struct

import cryptolib

VERSION = 0x01
KIND_LANE = 0x4C
KIND_ACK = 0x4B
HEADER_LEN = 26
PLAIN_LEN = 64
TAG_LEN = 32
FRAME_LEN = 122
MAX_SENDER = 31
MAX_ACK_CALLS = 7
AES_CBC = 2  # cryptolib's MODE_CBC

IDLE = 0
CALL = 1
ACKED = 2
OUT_OF_SERVICE = 3
STATES = (IDLE, CALL, ACKED, OUT_OF_SERVICE)

_PROBE_KEY = b"key"
_PROBE_MSG = b"The quick brown fox jumps over the lazy dog"
_PROBE_MAC = binascii.unhexlify("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")


class FrameError(ValueError):
    """A frame refused; ``reason`` as on the CPython side (length, version, kind, mac,
    sender, state, body)."""

    def __init__(self, reason):
        super().__init__("lane frame refused: " + reason)
        self.reason = reason


def hmac_sha256_rfc2104(key, msg):
    """HMAC-SHA256 (RFC 2104) with one-shot hash objects (no ``copy()`` needed)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def _library_hmac():
    """micropython-lib's ``hmac.new`` if it imports and gives the right answer here."""
    try:
        import hmac  # noqa: PLC0415 -- optional, probed once

        if hmac.new(_PROBE_KEY, _PROBE_MSG, hashlib.sha256).digest() == _PROBE_MAC:
            return lambda k, m: hmac.new(k, m, hashlib.sha256).digest()
    except Exception:  # noqa: S110 -- any failure means: not usable on this port
        pass
    return None


hmac_sha256 = _library_hmac() or hmac_sha256_rfc2104
HMAC_SOURCE = "micropython-lib" if hmac_sha256 is not hmac_sha256_rfc2104 else "rfc2104"


def equal(a, b):
    """Constant-time comparison (MicroPython has no ``hmac.compare_digest``)."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def derive(site_key):
    """(k_enc, k_mac) from the 32-byte site key."""
    if len(site_key) != 32:
        raise ValueError("site key: must be 32 bytes")
    return (
        hmac_sha256(site_key, b"fieldterm/v1 lane enc"),
        hmac_sha256(site_key, b"fieldterm/v1 lane mac"),
    )


def keys_from_hex(text):
    """The site key file's text (64 hex characters) -> (k_enc, k_mac)."""
    raw = text.strip()
    if len(raw) != 64:
        raise ValueError("lane key: must hold 64 hex characters")
    return derive(binascii.unhexlify(raw))


def _pad(raw, n):
    return raw + bytes(n - len(raw))


def seal(keys, kind, counter, sender, body, *, iv=None):
    """One frame (``iv`` is given only by golden vectors)."""
    raw = sender.encode()
    if not 1 <= len(raw) <= MAX_SENDER or len(body) > 32:
        raise ValueError("sender id or body too long")
    if iv is None:
        iv = os.urandom(16)
    header = struct.pack(">BBQ", VERSION, kind, counter) + iv
    plain = bytes([len(raw)]) + _pad(raw, MAX_SENDER) + _pad(body, 32)
    ct = cryptolib.aes(keys[0], AES_CBC, iv).encrypt(plain)
    return header + ct + hmac_sha256(keys[1], header + ct)


def open_frame(keys, data, kind):
    """(counter, sender, body) of a good frame of ``kind``; :class:`FrameError` otherwise.
    The MAC is checked before anything is decrypted."""
    if len(data) != FRAME_LEN:
        raise FrameError("length")
    if data[0] != VERSION:
        raise FrameError("version")
    if data[1] != kind:
        raise FrameError("kind")
    header = data[:HEADER_LEN]
    ct = data[HEADER_LEN : HEADER_LEN + PLAIN_LEN]
    if not equal(hmac_sha256(keys[1], header + ct), data[HEADER_LEN + PLAIN_LEN :]):
        raise FrameError("mac")
    plain = cryptolib.aes(keys[0], AES_CBC, bytes(header[10:26])).decrypt(ct)
    n = plain[0]
    if not 1 <= n <= MAX_SENDER:
        raise FrameError("sender")
    counter = struct.unpack(">Q", header[2:10])[0]
    return counter, bytes(plain[1 : 1 + n]).decode(), bytes(plain[32:])


def lane_body(state, call):
    return struct.pack(">BI", state, call)


def parse_lane_body(body):
    state, call = struct.unpack(">BI", body[:5])
    if state not in STATES:
        raise FrameError("state")
    return state, call


def ack_body(calls):
    if len(calls) > MAX_ACK_CALLS:
        raise ValueError("too many calls")
    out = bytes([len(calls)])
    for c in calls:
        out += struct.pack(">I", c)
    return out


def parse_ack_body(body):
    n = body[0]
    if n > MAX_ACK_CALLS:
        raise FrameError("body")
    return struct.unpack(">" + "I" * n, body[1 : 1 + 4 * n])


class LaneCounter:
    """Each sender's counter must rise (the CPython :class:`LaneCounter`'s rule)."""

    def __init__(self):
        self._last = {}

    def accept(self, sender, counter):
        if counter <= self._last.get(sender, -1):
            return False
        self._last[sender] = counter
        return True
