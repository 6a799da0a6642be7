"""RFC 9180 A.2.1 conformance of cryptography's HPKE for our suite, via a test-only reference."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from firmware.protocol.session import SUITE

V = json.loads((Path(__file__).parent / "vectors" / "rfc9180_a2_base.json").read_text())
H = bytes.fromhex
KEM_SUITE = b"KEM" + (32).to_bytes(2, "big")
HPKE_SUITE = b"HPKE" + (32).to_bytes(2, "big") + (1).to_bytes(2, "big") + (3).to_bytes(2, "big")


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, n: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:n]


def _lx(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _le(suite: bytes, prk: bytes, label: bytes, info: bytes, n: int) -> bytes:
    return _expand(prk, n.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, n)


def _raw(pub: X25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive_keypair(ikm: bytes) -> X25519PrivateKey:
    prk = _lx(KEM_SUITE, b"", b"dkp_prk", ikm)
    return X25519PrivateKey.from_private_bytes(_le(KEM_SUITE, prk, b"sk", b"", 32))


def reference_seal(ikm_e: bytes, pk_r: X25519PublicKey, info: bytes, aad: bytes, pt: bytes):
    """Test-only RFC 9180 SetupBaseS + Seal (seq 0); returns (enc, ct, schedule values)."""
    sk_e = _derive_keypair(ikm_e)
    enc = _raw(sk_e.public_key())
    dh = sk_e.exchange(pk_r)
    kem_ctx = enc + _raw(pk_r)
    eae = _lx(KEM_SUITE, b"", b"eae_prk", dh)
    shared = _le(KEM_SUITE, eae, b"shared_secret", kem_ctx, 32)
    ctx = (
        b"\x00"
        + _lx(HPKE_SUITE, b"", b"psk_id_hash", b"")
        + _lx(HPKE_SUITE, b"", b"info_hash", info)
    )
    secret = _lx(HPKE_SUITE, shared, b"secret", b"")
    key = _le(HPKE_SUITE, secret, b"key", ctx, 32)
    nonce = _le(HPKE_SUITE, secret, b"base_nonce", ctx, 12)
    exp = _le(HPKE_SUITE, secret, b"exp", ctx, 32)
    ct = ChaCha20Poly1305(key).encrypt(nonce, pt, aad)
    return (
        enc,
        ct,
        {
            "shared_secret": shared,
            "key_schedule_context": ctx,
            "secret": secret,
            "key": key,
            "base_nonce": nonce,
            "exporter_secret": exp,
        },
    )


def test_reference_reproduces_rfc_vector() -> None:
    sk_r = X25519PrivateKey.from_private_bytes(H(V["skRm"]))
    assert _raw(sk_r.public_key()) == H(V["pkRm"])
    e = V["encryptions"][0]
    enc, ct, sched = reference_seal(
        H(V["ikmE"]), sk_r.public_key(), H(V["info"]), H(e["aad"]), H(e["pt"])
    )
    assert enc == H(V["enc"])
    for name, value in sched.items():
        assert value == H(V[name]), name
    assert ct == H(e["ct"])


def test_cryptography_hpke_opens_reference_ciphertext() -> None:
    sk_r = X25519PrivateKey.from_private_bytes(H(V["skRm"]))
    pt = b"fieldterm conformance"
    enc, ct, _ = reference_seal(H(V["ikmE"]), sk_r.public_key(), H(V["info"]), b"", pt)
    assert SUITE.decrypt(enc + ct, sk_r, info=H(V["info"])) == pt
    # and the library's own seal opens with the reference schedule's peer: round trip
    sealed = SUITE.encrypt(pt, sk_r.public_key(), info=H(V["info"]))
    assert SUITE.decrypt(sealed, sk_r, info=H(V["info"])) == pt
