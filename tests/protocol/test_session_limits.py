"""Session limits (issue 13 part 5) and one query size (part 2), at the session layer:
a ticket lifetime cap, a ticket issued in the future, the verifying key rechecked on every
query, and document keys of every type and length sealed to queries of one size."""

from __future__ import annotations

import pytest

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.session import (
    MAX_TICKET_LIFETIME,
    QUERY_KEY_SIZE,
    RegionalSessions,
    TerminalSession,
    pad_document_key,
)
from tests.protocol.helpers import NOW, QID, REGION, TERMINAL, identity, kem

DAY = 86400.0
WINDOW = 120.0


def _terminal(now: float = NOW, lifetime: float = DAY, key=None) -> TerminalSession:
    return TerminalSession.new(
        region=REGION,
        terminal_id=TERMINAL,
        identity_key=key or identity(),
        regional_kem_public=kem().public_key(),
        now=now,
        lifetime=lifetime,
    )


def _regional(pinned) -> RegionalSessions:
    return RegionalSessions(region=REGION, kem_private=kem(), terminal_keys=pinned, window=WINDOW)


def _refusal(rs: RegionalSessions, payload: bytes, now: float) -> str:
    with pytest.raises(EnvelopeError) as e:
        rs.open_query(TERMINAL, payload, now)
    return e.value.reason or ""


DK = DocumentKey("D", "P", "C01X00T47")


def test_a_ten_year_ticket_is_refused_and_a_day_is_accepted() -> None:
    rs = _regional(lambda t: [identity().public_key()])
    long = _terminal(lifetime=3650 * DAY).seal_query(QID, DK, NOW)
    assert _refusal(rs, long.payload, NOW) == "lifetime"
    assert len(rs) == 0  # a refused ticket is never cached
    day = _terminal(lifetime=MAX_TICKET_LIFETIME + WINDOW).seal_query(QID, DK, NOW)
    assert rs.open_query(TERMINAL, day.payload, NOW).dk == DK


def test_a_ticket_issued_in_the_future_is_refused() -> None:
    rs = _regional(lambda t: [identity().public_key()])
    ahead = _terminal(now=NOW + 3600)  # the ticket claims to be issued an hour from now
    q = ahead.seal_query(QID, DK, NOW)  # while the query's own time is now
    assert _refusal(rs, q.payload, NOW) == "future"
    # the same ticket, once its issue time has come, is fine
    assert rs.open_query(TERMINAL, ahead.seal_query(QID, DK, NOW + 3600).payload, NOW + 3600)


def test_the_verifying_key_is_rechecked_on_every_query() -> None:
    """A cached session of a key whose validity ended is refused at once, by reason."""
    old, new = identity("old"), identity("new")
    not_after = NOW + 60
    clock = {"now": NOW}

    def pinned(tid: str):  # the registry's view: a key counts until its not_after
        keys = [(old.public_key(), not_after), (new.public_key(), None)]
        return [k for k, na in keys if na is None or clock["now"] < na]

    rs = _regional(pinned)
    ts = _terminal(key=old)
    assert rs.open_query(TERMINAL, ts.seal_query(QID, DK, NOW).payload, NOW)
    clock["now"] = NOW + 61
    assert _refusal(rs, ts.seal_query(QID, DK, NOW + 61).payload, NOW + 61) == "key_retired"
    fresh = _terminal(now=NOW + 61, key=new)
    assert rs.open_query(TERMINAL, fresh.seal_query(QID, DK, NOW + 61).payload, NOW + 61)


@pytest.mark.parametrize(
    "dk",
    [
        DocumentKey("D", "P", "1"),  # shortest number, one-letter state
        DocumentKey("UTO", "P", "L898902C3"),  # TD3, 9 characters
        DocumentKey("UTO", "I", "D23145890"),  # TD1
        DocumentKey("UTO", "V", "L8988901C"),  # visa
        DocumentKey("UTO", "I", "D23145890734"),  # optional-data overflow (12 characters)
        DocumentKey("UTO", "A", "X" * 22),  # the longest number a key may hold
    ],
)
def test_every_document_key_seals_to_one_query_size(dk: DocumentKey) -> None:
    ts = _terminal()
    reference = ts.seal_query(QID, DK, NOW).payload
    q = ts.seal_query(QID, dk, NOW)
    assert len(q.payload) == len(reference)
    assert len(pad_document_key(dk)) == QUERY_KEY_SIZE
    opened = _regional(lambda t: [identity().public_key()]).open_query(TERMINAL, q.payload, NOW)
    assert opened.dk == dk  # the padding is stripped, the key intact
