"""Sealed hit-alert batches: what the desk opens, what the broker sees, what is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.errors import EnvelopeError
from firmware.protocol import alerts

DESK = X25519PrivateKey.generate()
SIGN = Ed25519PrivateKey.generate()


def body(**over) -> dict:
    b = {
        "v": 1,
        "region": "central",
        "terminal": "kiosk-001",
        "query_id": "ab" * 16,
        "dkh": "cd" * 8,
        "reference": "UTO/2026/000123",
        "status": "STOLEN",
        "reporting_country": "UTO",
        "list_version": 7,
        "t": 1796130000.5,
    }
    b.update(over)
    return b


def seal(items, region="central", seq=1) -> bytes:
    return alerts.seal_batch(
        DESK.public_key(), region, src="p1", seq=seq, t=1796130001.0, alerts=items
    )


def test_round_trip_and_signature() -> None:
    item = alerts.sign_alert(SIGN, body())
    batch = alerts.open_batch(DESK, "central", seal([item]))
    assert (batch.src, batch.seq, len(batch.alerts)) == ("p1", 1, 1)
    assert alerts.verify_alert(SIGN.public_key(), batch.alerts[0], "central") == body()


def test_late_is_optional_and_must_be_a_boolean() -> None:
    for late in (True, False):
        item = alerts.sign_alert(SIGN, body(late=late))
        assert alerts.verify_alert(SIGN.public_key(), item, "central")["late"] is late
    assert "late" not in alerts.verify_alert(
        SIGN.public_key(), alerts.sign_alert(SIGN, body()), "central"
    )
    with pytest.raises(EnvelopeError) as e:
        alerts.verify_alert(SIGN.public_key(), alerts.sign_alert(SIGN, body(late="yes")), "central")
    assert e.value.reason == "structure"
    with pytest.raises(EnvelopeError):
        alerts.verify_alert(SIGN.public_key(), alerts.sign_alert(SIGN, body(extra=1)), "central")


def test_empty_and_full_worst_case_batches_are_the_same_size() -> None:
    """The broker must not tell a batch with hits from the empty ones sent every tick."""
    worst = body(
        region="r" * 63,
        terminal="t" * 63,
        reference='"' * 64,  # JSON-escaped to twice its length
        status="INVALIDATED",
        list_version=2**53,
        late=True,
    )
    full = [alerts.sign_alert(SIGN, worst) for _ in range(alerts.MAX_PER_BATCH)]
    empty = seal([], region="r" * 63)
    packed = seal(full, region="r" * 63)
    assert len(empty) == len(packed) == len(seal([alerts.sign_alert(SIGN, body())]))
    assert len(alerts.open_batch(DESK, "r" * 63, packed).alerts) == alerts.MAX_PER_BATCH
    assert b"UTO" not in packed and b"kiosk" not in seal([alerts.sign_alert(SIGN, body())])


def test_too_many_alerts_refused_by_the_sealer() -> None:
    items = [alerts.sign_alert(SIGN, body())] * (alerts.MAX_PER_BATCH + 1)
    with pytest.raises(ValueError, match="at most"):
        seal(items)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p[:-1] + bytes([p[-1] ^ 1]), "aead"),
        (lambda p: bytes([2]) + p[1:], "version"),
        (lambda p: p[:1] + b"Q" + p[2:], "type"),
        (lambda p: p[:40], "version"),
    ],
)
def test_tampered_batches_refused(mutate, reason) -> None:
    with pytest.raises(EnvelopeError) as exc:
        alerts.open_batch(DESK, "central", mutate(seal([])))
    assert exc.value.reason == reason


def test_other_region_or_other_desk_key_cannot_open() -> None:
    payload = seal([alerts.sign_alert(SIGN, body())])
    with pytest.raises(EnvelopeError, match="desk key"):
        alerts.open_batch(DESK, "north", payload)
    with pytest.raises(EnvelopeError, match="desk key"):
        alerts.open_batch(X25519PrivateKey.generate(), "central", payload)


def test_forged_or_edited_alert_refused() -> None:
    item = alerts.sign_alert(SIGN, body())
    edited = {"alert": body(terminal="kiosk-002"), "sig": item["sig"]}
    with pytest.raises(EnvelopeError, match="signature"):
        alerts.verify_alert(SIGN.public_key(), edited, "central")
    forged = alerts.sign_alert(Ed25519PrivateKey.generate(), body())
    with pytest.raises(EnvelopeError, match="signature"):
        alerts.verify_alert(SIGN.public_key(), forged, "central")
    with pytest.raises(EnvelopeError, match="region"):
        alerts.verify_alert(SIGN.public_key(), item, "north")
    extra = {"alert": {**body(), "number": "L898902C3"}, "sig": item["sig"]}
    with pytest.raises(EnvelopeError, match="fields"):
        alerts.verify_alert(SIGN.public_key(), extra, "central")
    with pytest.raises(ValueError, match="lacks"):
        alerts.sign_alert(SIGN, {"v": 1})


def test_numbered_alerts_and_queue_bounds_round_trip() -> None:
    """The optional, signed alert number and the batch's queue bounds (issue 14)."""
    numbered = body(epoch="e" * 16, aseq=41)
    item = alerts.sign_alert(SIGN, numbered)
    payload = alerts.seal_batch(
        DESK.public_key(), "central", src="p1", seq=3, t=1.0, alerts=[item],
        epoch="e" * 16, low=41, high=44,
    )  # fmt: skip
    assert len(payload) == len(seal([]))  # one size still
    batch = alerts.open_batch(DESK, "central", payload)
    assert (batch.epoch, batch.low, batch.high) == ("e" * 16, 41, 44)
    assert alerts.verify_alert(SIGN.public_key(), batch.alerts[0], "central") == numbered
    edited = {"alert": {**numbered, "aseq": 42}, "sig": item["sig"]}
    with pytest.raises(EnvelopeError, match="signature"):
        alerts.verify_alert(SIGN.public_key(), edited, "central")
    old = alerts.open_batch(DESK, "central", seal([]))  # an older regional's batch
    assert (old.epoch, old.low, old.high) == (None, None, None)
