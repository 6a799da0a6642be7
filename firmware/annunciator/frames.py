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

VERSION = 0x02
KIND_LANE = 0x4C
KIND_ACK = 0x4B
HEADER_LEN = 26
PLAIN_LEN = 64
TAG_LEN = 32
FRAME_LEN = 122
MAX_SENDER = 31
MAX_ACK_CALLS = 7
MAX_KEY_ID = 255
MAX_KEYS = 2
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
    """A frame refused; ``reason`` as on the CPython side (length, version, kind, key, mac,
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


def derive(site_key, key_id=1):
    """(key id, k_enc, k_mac) from the 32-byte site key."""
    if len(site_key) != 32:
        raise ValueError("site key: must be 32 bytes")
    return (
        key_id,
        hmac_sha256(site_key, b"fieldterm/v1 lane enc"),
        hmac_sha256(site_key, b"fieldterm/v1 lane mac"),
    )


def ring_from_text(text, source="lane.key"):
    """The key ring file (firmware/lane/keyring.py documents it) -> (send keys,
    {key id: keys}); ValueError naming the line otherwise."""
    send = None
    ring = {}
    n = 0
    for line in text.split("\n"):
        n += 1
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        where = source + " line " + str(n)
        if words[0] == "send" and len(words) == 2 and send is None:
            send = _key_id(words[1], where)
        elif words[0] == "key" and len(words) == 3 and len(words[2]) == 64:
            kid = _key_id(words[1], where)
            if kid in ring:
                raise ValueError(where + ": key id listed twice")
            ring[kid] = derive(binascii.unhexlify(words[2]), kid)
        else:
            raise ValueError(where + ": expected 'send ID' or 'key ID HEX'")
    if not ring or len(ring) > MAX_KEYS or send not in ring:
        raise ValueError(source + ": 1 or 2 keys, and 'send' naming one of them")
    return ring[send], ring


def _key_id(word, where):
    if not word.isdigit() or not 1 <= int(word) <= MAX_KEY_ID:
        raise ValueError(where + ": key id must be 1 to 255")
    return int(word)


def _pad(raw, n):
    return raw + bytes(n - len(raw))


def seal(keys, kind, counter, sender, body, *, iv=None):
    """One frame (``iv`` is given only by golden vectors)."""
    raw = sender.encode()
    if not 1 <= len(raw) <= MAX_SENDER or len(body) > 32:
        raise ValueError("sender id or body too long")
    if iv is None:
        iv = os.urandom(16)
    header = bytes([VERSION, kind, keys[0]]) + counter.to_bytes(7, "big") + iv
    plain = bytes([len(raw)]) + _pad(raw, MAX_SENDER) + _pad(body, 32)
    ct = cryptolib.aes(keys[1], AES_CBC, iv).encrypt(plain)
    return header + ct + hmac_sha256(keys[2], header + ct)


def open_frame(ring, data, kind):
    """(counter, sender, body) of a good frame of ``kind``, opened with the key of
    ``ring`` ({key id: keys}) that its header names; :class:`FrameError` otherwise. The
    MAC is checked before anything is decrypted."""
    if len(data) != FRAME_LEN:
        raise FrameError("length")
    if data[0] != VERSION:
        raise FrameError("version")
    if data[1] != kind:
        raise FrameError("kind")
    keys = ring.get(data[2])
    if keys is None:
        raise FrameError("key")
    header = data[:HEADER_LEN]
    ct = data[HEADER_LEN : HEADER_LEN + PLAIN_LEN]
    if not equal(hmac_sha256(keys[2], header + ct), data[HEADER_LEN + PLAIN_LEN :]):
        raise FrameError("mac")
    plain = cryptolib.aes(keys[1], AES_CBC, bytes(header[10:26])).decrypt(ct)
    n = plain[0]
    if not 1 <= n <= MAX_SENDER:
        raise FrameError("sender")
    counter = int.from_bytes(bytes(header[3:10]), "big")
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
