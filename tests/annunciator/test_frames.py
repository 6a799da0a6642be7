"""Lane frame codec, both implementations: CPython (firmware/lane/frames.py, cryptography)
and MicroPython (firmware/annunciator/frames.py, cryptolib + hashlib, run under the unix
port). Golden vectors shared by both; RFC 4231 pins the MicroPython HMAC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware.lane import frames
from firmware.lane.keyring import KeyRing, RawRing, parse_ring, render_ring
from tests.annunciator.make_vectors import build
from tests.annunciator.rig import run_micropython

VECTORS = json.loads((Path(__file__).with_name("vectors") / "lane_v2.json").read_text())
KEYS = frames.SiteKeys.derive(bytes.fromhex(VECTORS["site_key"]), VECTORS["key_id"])
RING = KeyRing.single(KEYS)

# RFC 4231 section 4: HMAC-SHA256 test cases 1, 2, 3, 4, 6, 7 (case 5 is truncated output)
RFC4231 = [
    ("0b" * 20, b"Hi There".hex(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe".hex(), b"what do ya want for nothing?".hex(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 20, "dd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    ("0102030405060708090a0b0c0d0e0f10111213141516171819", "cd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ("aa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".hex(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]  # fmt: skip


def test_vectors_are_current():
    assert build() == VECTORS, "frame format changed: regenerate with make_vectors on purpose"


def test_cpython_golden_vectors_open_and_match():
    assert KEYS.enc.hex() == VECTORS["k_enc"] and KEYS.mac.hex() == VECTORS["k_mac"]
    for case in VECTORS["cases"]:
        raw = bytes.fromhex(case["frame"])
        assert len(raw) == 122
        kind = frames.KIND_LANE if case["kind"] == "lane" else frames.KIND_ACK
        o = frames.open_frame(RING, raw, kind)
        assert (o.counter, o.sender, o.key_id) == (case["counter"], case["sender"], 7)
        if kind == frames.KIND_LANE:
            assert frames.parse_lane_body(o.body) == (case["state"], case["call"])
        else:
            assert list(frames.parse_ack_body(o.body)) == case["calls"]


def test_ciphertext_is_plain_aes_cbc_of_the_documented_layout():
    """Independent of seal(): decrypt a vector with AES-CBC and read the layout by hand."""
    case = VECTORS["cases"][1]
    raw = bytes.fromhex(case["frame"])
    assert raw[:3] == b"\x02L\x07" and int.from_bytes(raw[3:10], "big") == case["counter"]
    dec = Cipher(algorithms.AES(KEYS.enc), modes.CBC(raw[10:26])).decryptor()
    plain = dec.update(raw[26:90]) + dec.finalize()
    assert plain[0] == len("kiosk-002") and plain[1:10] == b"kiosk-002"
    assert plain[32] == frames.CALL and plain[33:37] == bytes.fromhex("1a2b3c4d")
    assert plain[37:] == bytes(27)


def test_every_state_and_ack_has_the_same_size():
    sizes = {len(frames.seal_lane(KEYS, 1, "kiosk-001", s, 7)) for s in frames.STATE_NAMES}
    sizes |= {len(frames.seal_ack(KEYS, 1, "p", calls)) for calls in [(), (1,), tuple(range(7))]}
    assert sizes == {122}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:-1], "length"),
        (lambda f: b"\x01" + f[1:], "version"),
        (lambda f: f[:1] + b"K" + f[2:], "kind"),
        (lambda f: f[:2] + b"\x08" + f[3:], "key"),  # a key id this ring does not hold
        (lambda f: f[:40] + bytes([f[40] ^ 1]) + f[41:], "mac"),  # ciphertext byte
        (lambda f: f[:5] + bytes([f[5] ^ 1]) + f[6:], "mac"),  # counter byte
        (lambda f: f[:-1] + bytes([f[-1] ^ 0x80]), "mac"),  # tag byte
    ],
)
def test_tampered_frames_are_refused_with_the_reason(mutate, reason):
    good = frames.seal_lane(KEYS, 10, "kiosk-002", frames.CALL, 5)
    with pytest.raises(frames.FrameError) as e:
        frames.open_frame(RING, mutate(good), frames.KIND_LANE)
    assert e.value.reason == reason


def test_wrong_site_key_is_refused():
    other = frames.SiteKeys.derive(bytes(32), KEYS.id)  # the right id, the wrong key
    with pytest.raises(frames.FrameError) as e:
        frames.open_frame(
            RING, frames.seal_lane(other, 1, "kiosk-002", frames.CALL, 5), frames.KIND_LANE
        )
    assert e.value.reason == "mac"


def test_a_ring_opens_frames_of_either_key_by_the_id_in_the_header():
    old, new = KEYS, frames.SiteKeys.derive(bytes(range(32)), 8)
    ring = KeyRing(new, (old, new))
    for k in (old, new):
        f = frames.seal_lane(k, 5, "kiosk-001", frames.IDLE, 0)
        assert frames.open_frame(ring, f, frames.KIND_LANE).key_id == k.id
    retired = KeyRing.single(new)
    with pytest.raises(frames.FrameError) as e:
        frames.open_frame(retired, frames.seal_lane(old, 6, "kiosk-001", 0, 0), frames.KIND_LANE)
    assert e.value.reason == "key"


def test_key_ring_file_round_trips_and_bad_lines_are_named():
    raw = RawRing(2, ((1, bytes(32)), (2, bytes(range(32)))))
    text = render_ring(raw, "post-1")
    assert parse_ring(text) == raw
    assert KeyRing.from_text(text).describe() == "send=2 accept=1,2"
    bad = {
        "send 3\nkey 1 " + "00" * 32: "'send ID' must name one of the listed keys",
        "send 1\nkey 1 abc": "line 2: the key must be 64 hex characters",
        "send 1\nkey 0 " + "00" * 32: "line 2: key id '0' must be a number from 1 to 255",
        "send 1\nkey 1 " + "00" * 32 + "\nkey 1 " + "11" * 32: "line 3: key id 1 listed twice",
        "send 1\n" + "".join(f"key {i} {'00' * 32}\n" for i in (1, 2, 3)): "1 to 2 keys",
        "send 1\nsend 1\nkey 1 " + "00" * 32: "line 2: expected 'send ID' (once)",
        "00" * 32: "line 1: expected",
    }
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_ring(text, "lane.key")


def test_lane_counter_refuses_replay_and_reorder():
    c = frames.LaneCounter()
    assert c.accept("kiosk-001", 100) and c.accept("kiosk-001", 102)
    assert not c.accept("kiosk-001", 102)  # replay
    assert not c.accept("kiosk-001", 101)  # reordered
    assert c.accept("kiosk-002", 1)  # per sender


def test_ack_counter_epochs():
    """A panel's counter is epoch u24 ‖ seq u32 (the frame's counter has 56 bits)."""
    c = frames.AckCounter()
    assert c.accept("p", (7 << 32) | 1) and c.accept("p", (7 << 32) | 2)
    assert not c.accept("p", (7 << 32) | 2) and not c.accept("p", (7 << 32) | 1)
    assert c.accept("p", (3 << 32) | 1)  # a reboot: new random epoch


# -- the MicroPython implementation -------------------------------------------------------
MP_CHECK = r"""
import json, binascii
from annunciator import frames as f
h = binascii.hexlify
V = json.loads(open(%(vectors)r).read())
keys = f.derive(binascii.unhexlify(V["site_key"]), V["key_id"])
ring = {keys[0]: keys}
out = {"hmac_source": f.HMAC_SOURCE, "k_enc": h(keys[1]).decode(), "k_mac": h(keys[2]).decode()}
out["rfc4231"] = [h(f.hmac_sha256(binascii.unhexlify(k), binascii.unhexlify(m))).decode()
                  for k, m in %(rfc)r]
sealed, opened = [], []
for c in V["cases"]:
    iv = binascii.unhexlify(c["iv"])
    if c["kind"] == "lane":
        kind, body = f.KIND_LANE, f.lane_body(c["state"], c["call"])
    else:
        kind, body = f.KIND_ACK, f.ack_body(c["calls"])
    sealed.append(h(f.seal(keys, kind, c["counter"], c["sender"], body, iv=iv)).decode())
    counter, sender, b = f.open_frame(ring, binascii.unhexlify(c["frame"]), kind)
    parsed = list(f.parse_lane_body(b)) if kind == f.KIND_LANE else list(f.parse_ack_body(b))
    opened.append([counter, sender, parsed])
out["sealed"], out["opened"] = sealed, opened
good = binascii.unhexlify(V["cases"][1]["frame"])
bad = []
for mutated in (good[:-1], good[:40] + bytes([good[40] ^ 1]) + good[41:],
                good[:-1] + bytes([good[-1] ^ 0x80]), b"\x01" + good[1:],
                good[:2] + b"\x08" + good[3:]):
    try:
        f.open_frame(ring, mutated, f.KIND_LANE); bad.append("accepted")
    except f.FrameError as e:
        bad.append(e.reason)
try:
    f.open_frame({7: f.derive(bytes(32), 7)}, good, f.KIND_LANE); bad.append("accepted")
except f.FrameError as e:
    bad.append(e.reason)
out["bad"] = bad
rings = []
for text in %(rings)r:
    try:
        send, r = f.ring_from_text(text)
        rings.append([send[0], sorted(r), h(r[send[0]][1]).decode()])
    except ValueError as e:
        rings.append(str(e))
out["rings"] = rings
lc = f.LaneCounter()
out["counter"] = [lc.accept("a", 5), lc.accept("a", 5), lc.accept("a", 4), lc.accept("a", 6)]
print(json.dumps(out))
"""


SITE_KEY = bytes.fromhex(VECTORS["site_key"])
MP_RINGS = [
    render_ring(RawRing(7, ((6, bytes(32)), (7, SITE_KEY))), "post-1"),
    render_ring(RawRing(7, ((7, SITE_KEY),)), "post-1"),
    "send 2\nkey 1 " + "00" * 32,
    "send 1\nkey 1 abc",
]


@pytest.fixture(scope="module")
def mp_results():
    code = MP_CHECK % {
        "vectors": str(Path(__file__).with_name("vectors") / "lane_v2.json"),
        "rfc": [(k, m) for k, m, _ in RFC4231],
        "rings": MP_RINGS,
    }
    return run_micropython(code)


def test_micropython_hmac_matches_rfc4231(mp_results):
    assert mp_results["rfc4231"] == [want for _, _, want in RFC4231]
    # micropython-lib hmac 3.4.2.post3 needs `warnings` and hash.copy(): not on 1.29
    assert mp_results["hmac_source"] in ("rfc2104", "micropython-lib")


def test_micropython_derives_the_same_subkeys(mp_results):
    assert (mp_results["k_enc"], mp_results["k_mac"]) == (VECTORS["k_enc"], VECTORS["k_mac"])


def test_micropython_seals_the_golden_frames(mp_results):
    assert mp_results["sealed"] == [c["frame"] for c in VECTORS["cases"]]


def test_micropython_opens_the_golden_frames(mp_results):
    want = [
        [c["counter"], c["sender"], [c["state"], c["call"]] if c["kind"] == "lane" else c["calls"]]
        for c in VECTORS["cases"]
    ]
    assert mp_results["opened"] == want


def test_micropython_refuses_tampered_and_wrong_key(mp_results):
    assert mp_results["bad"] == ["length", "mac", "mac", "version", "key", "mac"]
    assert mp_results["counter"] == [True, False, False, True]


def test_micropython_reads_the_key_rings_provisioning_writes(mp_results):
    ring_a, ring_b, bad_send, bad_key = mp_results["rings"]
    assert ring_a == [7, [6, 7], VECTORS["k_enc"]] and ring_b == [7, [7], VECTORS["k_enc"]]
    assert "'send' naming one of them" in bad_send
    assert bad_key.startswith("lane.key line 2: expected")
