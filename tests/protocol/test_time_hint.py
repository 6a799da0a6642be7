"""Time hints: an authentic query with a wrong clock is told the regional's time, signed,
bound to that query; nothing else changes (docs/time.md)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import EnvelopeError
from firmware.protocol.messages import Response
from firmware.protocol.session import (
    OutOfWindow,
    RegionalSessions,
    StaleQuery,
    TerminalSession,
    TimeHint,
)
from tests.protocol.helpers import DK, NOW, QID, REGION, TERMINAL, identity, kem, seeded

DAY = 86400.0
SIGN = Ed25519PrivateKey.from_private_bytes(seeded("regional sign"))
OTHER_SIGN = Ed25519PrivateKey.from_private_bytes(seeded("someone else"))
QID2 = bytes(range(16, 32))


def regional() -> RegionalSessions:
    pinned = {TERMINAL: [identity().public_key()]}
    return RegionalSessions(
        region=REGION, kem_private=kem(), terminal_keys=lambda t: pinned.get(t, [])
    )


def terminal(now: float) -> TerminalSession:
    return TerminalSession.new(
        region=REGION,
        terminal_id=TERMINAL,
        identity_key=identity(),
        regional_kem_public=kem().public_key(),
        now=now,
    )


def stale_of(rs: RegionalSessions, payload: bytes, now: float) -> StaleQuery:
    with pytest.raises(OutOfWindow) as exc:
        rs.open_query(TERMINAL, payload, now)
    assert exc.value.reason == "window"  # counted like any window refusal
    return exc.value.stale


@pytest.mark.parametrize(
    "skew",
    [-30 * DAY, -DAY, 600.0, 365 * DAY],
    ids=["-30d (ticket expired)", "-1d (ticket expired)", "+10min", "+1y (ticket in future)"],
)
def test_out_of_window_query_gets_a_signed_hint_that_fixes_the_clock(skew: float) -> None:
    rs, ts = regional(), terminal(NOW + skew)
    stale = stale_of(rs, ts.seal_query(QID, DK, NOW + skew).payload, NOW)
    assert (stale.terminal_id, stale.query_id) == (TERMINAL, QID)
    assert stale.timestamp - NOW == pytest.approx(skew, abs=0.001)
    _, hint = ts.open_reply(rs.seal_time_hint(stale, NOW, SIGN), SIGN.public_key())
    assert isinstance(hint, TimeHint)
    assert hint.regional_time == pytest.approx(NOW, abs=0.001)
    assert hint.query_time - hint.regional_time == pytest.approx(skew, abs=0.001)
    # corrected protocol time and a new session: the real answer, in the window
    fixed = terminal(NOW + 0.2)
    q = rs.open_query(TERMINAL, fixed.seal_query(QID, DK, NOW + 0.2).payload, NOW + 0.3)
    assert (q.query_id, q.dk) == (QID, DK)


def test_hint_is_the_size_and_type_of_a_response() -> None:
    rs, ts = regional(), terminal(NOW + 600)
    stale = stale_of(rs, ts.seal_query(QID, DK, NOW + 600).payload, NOW)
    hint = rs.seal_time_hint(stale, NOW, SIGN)
    fresh = terminal(NOW)
    q = rs.open_query(TERMINAL, fresh.seal_query(QID, DK, NOW).payload, NOW)
    answer = rs.seal_response(q, Response(QID, "NO_MATCH", list_version=7))
    assert (len(hint), hint[:2]) == (len(answer), answer[:2])


def test_hint_signed_by_another_key_or_unpinned_is_refused() -> None:
    rs, ts = regional(), terminal(NOW - DAY)
    stale = stale_of(rs, ts.seal_query(QID, DK, NOW - DAY).payload, NOW)
    payload = rs.seal_time_hint(stale, NOW, OTHER_SIGN)
    with pytest.raises(EnvelopeError, match="not signed by the pinned regional key"):
        ts.open_reply(payload, SIGN.public_key())
    with pytest.raises(EnvelopeError, match="no pinned regional signing key"):
        ts.open_reply(rs.seal_time_hint(stale, NOW, SIGN), None)


def test_hint_cannot_be_moved_to_another_query_or_replayed() -> None:
    rs, ts = regional(), terminal(NOW - DAY)
    s1 = ts.seal_query(QID, DK, NOW - DAY)
    s2 = ts.seal_query(QID2, DK, NOW - DAY)
    hint1 = rs.seal_time_hint(stale_of(rs, s1.payload, NOW), NOW, SIGN)
    moved = hint1[:2] + s2.nonce + hint1[14:]  # point it at the other pending query
    with pytest.raises(EnvelopeError, match="authentication failed"):
        ts.open_reply(moved, SIGN.public_key())
    ts.open_reply(hint1, SIGN.public_key())
    with pytest.raises(EnvelopeError, match="no pending query"):
        ts.open_reply(hint1, SIGN.public_key())  # spent


def test_expired_ticket_with_a_current_query_time_is_still_expired() -> None:
    """Only a wrong *clock* earns a hint: an old ticket with a current query time is a
    ticket past its lifetime and is refused as before."""
    rs, ts = regional(), terminal(NOW - 2 * DAY)
    with pytest.raises(EnvelopeError) as exc:
        rs.open_query(TERMINAL, ts.seal_query(QID, DK, NOW).payload, NOW)
    assert not isinstance(exc.value, OutOfWindow)
    assert exc.value.reason == "expired"


def test_tampered_query_with_a_stale_ticket_gets_no_hint() -> None:
    rs, ts = regional(), terminal(NOW - DAY)
    p = bytearray(ts.seal_query(QID, DK, NOW - DAY).payload)
    p[-1] ^= 1
    with pytest.raises(EnvelopeError) as exc:
        rs.open_query(TERMINAL, bytes(p), NOW)
    assert not isinstance(exc.value, OutOfWindow)
    assert exc.value.reason == "aead"


def test_answers_still_open_through_open_reply() -> None:
    rs, ts = regional(), terminal(NOW)
    q = rs.open_query(TERMINAL, ts.seal_query(QID, DK, NOW).payload, NOW)
    _, r = ts.open_reply(rs.seal_response(q, Response(QID, "NO_MATCH")), SIGN.public_key())
    assert isinstance(r, Response)
    assert r.outcome == "NO_MATCH"
