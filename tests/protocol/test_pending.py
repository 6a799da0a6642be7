"""Sealed pending keys: what the outbox keeps opens only at the regional, for its own
terminal and query id, and a resend days later is answered with a fresh envelope."""

from __future__ import annotations

import pytest

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.pending import (
    BOX_LEN,
    PendingSealer,
    SealedDocumentKey,
    open_document_key,
    seal_document_key,
)
from firmware.protocol.session import TYPE_QUERY, TYPE_RESEND
from tests.protocol.helpers import DK, NOW, QID, REGION, TERMINAL, identity, kem
from tests.protocol.test_session import reason_of, regional, terminal

DAY = 86400.0


def box_of(dk=DK, qid=QID, tid=TERMINAL) -> SealedDocumentKey:
    return seal_document_key(kem().public_key(), REGION, tid, qid, dk)


def test_box_opens_with_the_regional_key_only() -> None:
    box = box_of()
    assert len(box.box) == BOX_LEN
    assert open_document_key(kem(), REGION, TERMINAL, QID, box.box) == DK
    assert DK.number.encode() not in box.box
    other = kem("another-region")
    with pytest.raises(EnvelopeError) as e:
        open_document_key(other, REGION, TERMINAL, QID, box.box)
    assert e.value.reason == "pending"


@pytest.mark.parametrize(
    ("tid", "qid", "region"),
    [("kiosk-002", QID, REGION), (TERMINAL, b"\x09" * 16, REGION), (TERMINAL, QID, "xx")],
)
def test_box_is_bound_to_terminal_query_and_region(tid, qid, region) -> None:
    with pytest.raises(EnvelopeError, match="does not open"):
        open_document_key(kem(), region, tid, qid, box_of().box)


def test_every_box_has_one_size() -> None:
    sizes = {
        len(box_of(DocumentKey(s, c, n)).box)
        for s, c, n in [("D", "I", "1"), ("UTO", "P", "L898902C3"), ("UTO", "V", "Z" * 22)]
    }
    assert sizes == {BOX_LEN}


def test_sealer_is_not_deterministic() -> None:
    s = PendingSealer(kem().public_key(), REGION, TERMINAL)
    assert s.seal(QID, DK) != s.seal(QID, DK)  # fresh HPKE ephemeral: no guess can be checked


def test_resend_is_answered_days_later_with_a_fresh_envelope() -> None:
    """The box was sealed at acceptance; a resend 3 days later (a new session, a new
    timestamp) is inside the window, opens to the document and gets its answer."""
    box = box_of()
    later = NOW + 3 * DAY
    term = terminal(now=later)
    sealed = term.seal_query(QID, box, later)
    assert sealed.payload[1] == TYPE_RESEND
    reg = regional()
    q = reg.open_query(TERMINAL, sealed.payload, later + 1)
    assert (q.query_id, q.dk, q.timestamp) == (QID, DK, pytest.approx(later))
    assert q.resend is True  # its hit alert is marked late
    resp = reg.seal_response(q, Response(QID, "NO_MATCH", list_version=3))
    _, r = term.open_response(resp)
    assert (r.query_id, r.outcome) == (QID, "NO_MATCH")


def test_a_plain_query_is_unchanged() -> None:
    sealed = terminal().seal_query(QID, DK, NOW)
    assert sealed.payload[1] == TYPE_QUERY
    q = regional().open_query(TERMINAL, sealed.payload, NOW)
    assert q.dk == DK and q.resend is False


def test_resend_of_another_terminals_box_is_refused() -> None:
    """A stolen box replayed by another (pinned) terminal under its own session."""
    other = "kiosk-002"
    reg = regional(
        keys={TERMINAL: [identity().public_key()], other: [identity(other).public_key()]}
    )
    payload = terminal(tid=other).seal_query(QID, box_of(), NOW).payload
    with pytest.raises(EnvelopeError) as e:
        reg.open_query(other, payload, NOW)
    assert reason_of(e) == "pending"


def test_a_captured_resend_replayed_late_is_outside_the_window() -> None:
    """The outer envelope carries the time of sending, so the window still applies."""
    payload = terminal().seal_query(QID, box_of(), NOW).payload
    with pytest.raises(EnvelopeError) as e:
        regional().open_query(TERMINAL, payload, NOW + 600)
    assert reason_of(e) == "window"
