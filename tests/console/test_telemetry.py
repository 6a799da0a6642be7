"""Kiosk telemetry: fixed size, sealed to the desk, signed by the kiosk; the console's
opener refuses a wrong signer, a revoked kiosk, a replay and another terminal's message."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.agent.telemetry import TelemetrySender, start_for
from firmware.errors import EnvelopeError
from firmware.protocol import keys
from firmware.protocol import telemetry as wire
from host_tools.console.fleet import Fleet
from host_tools.console.telemetry_open import TelemetryOpener

DESK = X25519PrivateKey.generate()
KIOSK = Ed25519PrivateKey.generate()


def msg(seq=1, boot="b1", terminal="k1", health=None, key=KIOSK):
    return wire.seal(
        DESK.public_key(), key, region="central", terminal=terminal, boot=boot, seq=seq,
        t=1000.0, health=health if health is not None else {"scanner": True, "pending": 0},
    )  # fmt: skip


def test_every_message_has_the_same_size_whatever_the_health():
    small = msg(health={})
    big = msg(health={"offline_list": {"list_version": 123456789, "reason": "x" * 600}})
    assert len(small) == len(big) == 2 + 32 + wire.SIZE + 16


def test_opens_only_with_the_desk_key_and_the_kiosks_signature():
    body = wire.open_(DESK, "central", "k1", msg(), [KIOSK.public_key()])
    assert body["health"] == {"scanner": True, "pending": 0} and body["seq"] == 1
    with pytest.raises(EnvelopeError) as e:
        wire.open_(X25519PrivateKey.generate(), "central", "k1", msg(), [KIOSK.public_key()])
    assert e.value.reason == "aead"
    with pytest.raises(EnvelopeError) as e:
        wire.open_(
            DESK, "central", "k1", msg(key=Ed25519PrivateKey.generate()), [KIOSK.public_key()]
        )
    assert e.value.reason == "signature"
    # k2's message published on k1's topic: sealed for k2, it does not open as k1's
    with pytest.raises(EnvelopeError) as e:
        wire.open_(DESK, "central", "k1", msg(terminal="k2"), [KIOSK.public_key()])
    assert e.value.reason == "aead"
    with pytest.raises(ValueError, match="exceeds"):
        msg(health={"x": "y" * wire.SIZE})


def test_console_opener_uses_fleet_keys_and_drops_replays(tmp_path):
    f = tmp_path / "fleet.json"
    row = {"id": "k1", "site": "s", "revoked": False, "cert_not_after": None,
           "identity_keys": [keys.ed25519_public_b64(KIOSK.public_key())]}  # fmt: skip
    f.write_text(json.dumps({"terminals": [row]}))
    opener = TelemetryOpener(DESK, "central", Fleet(f))
    assert opener("k1", msg(seq=1))["scanner"] is True
    assert opener("k1", msg(seq=1)) is None  # replayed
    assert opener("k1", msg(seq=2)) is not None
    assert opener("k1", msg(seq=1, boot="b2")) is not None  # the agent restarted
    assert opener("k9", msg(terminal="k9")) is None  # not provisioned: no key
    f.write_text(json.dumps({"terminals": [{**row, "revoked": True}]}))
    assert opener("k1", msg(seq=3, boot="b2")) is None
    assert opener.refused == 2


def test_sender_publishes_fixed_size_messages_only_while_the_link_is_up():
    sent, up = [], [False]
    sender = TelemetrySender(
        lambda topic, payload: sent.append((topic, payload)),
        desk=DESK.public_key(), identity=KIOSK, region="central", terminal="k1",
        snapshot=lambda: {"scanner": True, "pending": 3}, link_up=lambda: up[0],
    )  # fmt: skip
    assert not sender.send_once() and sent == []
    up[0] = True
    assert sender.send_once() and sender.send_once()
    assert [t for t, _ in sent] == ["ft/v1/central/telemetry/k1"] * 2
    assert len({len(p) for _, p in sent}) == 1
    bodies = [wire.open_(DESK, "central", "k1", p, [KIOSK.public_key()]) for _, p in sent]
    assert [b["seq"] for b in bodies] == [1, 2] and bodies[0]["health"]["pending"] == 3


def test_no_desk_key_in_the_bundle_no_telemetry(tmp_path):
    cfg = SimpleNamespace(client=SimpleNamespace(identity_key=tmp_path / "identity.key"))
    agent = SimpleNamespace(cfg=cfg, client=SimpleNamespace(publish=lambda *a, **k: None))
    assert start_for(agent) is None
    assert start_for(SimpleNamespace(cfg=SimpleNamespace(client=None), client=None)) is None


def test_health_carries_what_the_status_dropped_and_always_fits():
    """audit_head, pending and documents travel here now (the retained status has only
    {terminal, state}); the worst alarms and list reason still fit the fixed size."""
    from firmware.agent.telemetry import health_of  # noqa: PLC0415

    info = {"pending": 4, "documents": 10**9, "audit_head": {"seq": 10**9, "mac": "f" * 64}}
    h = health_of(info, link=True, scanner=False)
    assert (h["pending"], h["documents"], h["audit_head"]) == (4, 10**9, info["audit_head"])
    worst = health_of(
        {**info, "alarms": ['"\\\u0416' * 500] * 50, "storage_full": True,
         "offline_list": {"list_version": 2**53, "list_age_s": 1e300, "stale": True,
                          "records": 2**53, "reason": '"' * 5000}},
        link=False, scanner=True,
    )  # fmt: skip
    assert worst["alarms"] == 50 and len(worst["alarm_text"]) == 3
    seq, boot = 2**53, "f" * 16
    assert len(msg(seq=seq, boot=boot, terminal="t" * 63, health=worst)) == len(msg())
