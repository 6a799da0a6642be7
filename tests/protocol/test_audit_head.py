"""The audit head a query may carry and the anchor an answer carries back (issue 14;
docs/protocol.md, "Audit anchor"): optional, inside the AEAD, compatible both ways."""

from __future__ import annotations

import os

import pytest

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import (
    RESPONSE_BLOCK,
    Response,
    decode_response_body,
    encode_response_body,
)
from firmware.protocol.pending import PendingSealer
from firmware.protocol.session import HEAD, RegionalSessions, TerminalSession
from tests.protocol.helpers import REGION, TERMINAL, identity, kem

KEM = kem()

NOW = 1_800_000_000.0
QID = bytes(range(16))
DK = DocumentKey("UTO", "P", "L898902C3")
HEAD_VALUE = (41, bytes(range(32)))


def _pair() -> tuple[TerminalSession, RegionalSessions]:
    ts = TerminalSession.new(
        region=REGION, terminal_id=TERMINAL, identity_key=identity(),
        regional_kem_public=KEM.public_key(), now=NOW,
    )  # fmt: skip
    rs = RegionalSessions(
        region=REGION, kem_private=KEM, terminal_keys=lambda t: [identity().public_key()]
    )
    return ts, rs


def test_a_query_carries_the_head_inside_the_aead_and_an_older_one_opens_without() -> None:
    ts, rs = _pair()
    plain = ts.seal_query(QID, DK, NOW)
    ts.audit_head = lambda: HEAD_VALUE
    headed = ts.seal_query(QID, DK, NOW)
    assert len(headed.payload) == len(plain.payload) + HEAD.size  # 40 bytes, one size
    opened = rs.open_query(TERMINAL, headed.payload, NOW)
    assert (opened.dk, opened.audit_head) == (DK, HEAD_VALUE)
    assert rs.open_query(TERMINAL, plain.payload, NOW).audit_head is None
    assert HEAD_VALUE[1] not in headed.payload  # sealed, not in clear
    flipped = headed.payload[:-1] + bytes([headed.payload[-1] ^ 1])
    with pytest.raises(EnvelopeError, match="aead"):
        rs.open_query(TERMINAL, flipped, NOW)


def test_a_resend_carries_the_head_too() -> None:
    ts, rs = _pair()
    sealer = PendingSealer(KEM.public_key(), REGION, TERMINAL)
    ts.audit_head = lambda: HEAD_VALUE
    qid = os.urandom(16)
    resend = ts.seal_query(qid, sealer.ref(sealer.seal(qid, DK)), NOW)
    opened = rs.open_query(TERMINAL, resend.payload, NOW)
    assert (opened.dk, opened.audit_head) == (DK, HEAD_VALUE)


def test_an_anchor_pads_hit_and_miss_to_one_size_and_round_trips() -> None:
    anchor = (2**63, "ab" * 32)
    record = {
        "status": "INVALIDATED", "reporting_country": "UTO", "reference": "R" * 64,
        "reported_on": "2026-01-01", "document_type": "PX",
    }  # fmt: skip
    hit = Response(QID, "POSSIBLE_MATCH", 2**53, record, anchor=anchor)
    miss = Response(QID, "NO_MATCH", 1, anchor=(0, ""))
    sizes = {len(encode_response_body(r)) for r in (hit, miss)}
    assert sizes == {2 * RESPONSE_BLOCK}  # the longest hit with an anchor still fits
    assert decode_response_body(QID, encode_response_body(hit)) == hit
    assert decode_response_body(QID, encode_response_body(miss)).anchor == (0, "")
    assert len(encode_response_body(Response(QID, "NO_MATCH", 1))) == RESPONSE_BLOCK
    with pytest.raises(EnvelopeError, match="anchor"):
        Response(QID, "NO_MATCH", anchor=(1, "not hex"))


def test_a_head_seq_sqlite_cannot_hold_is_refused_naming_the_field() -> None:
    # found by the live fuzz: such a head, stored as the kiosk's anchor, raised
    # OverflowError in the regional's audit writer, which then stopped every answer
    ts, rs = _pair()
    ts.audit_head = lambda: (2**63, bytes(32))
    with pytest.raises(EnvelopeError, match=r"malformed.*audit head seq 9223372036854775808 "
                       r"above 2\*\*63-1 \(plaintext byte \d+\)"):  # fmt: skip
        rs.open_query(TERMINAL, ts.seal_query(QID, DK, NOW).payload, NOW)
    ts.audit_head = lambda: (2**63 - 1, bytes(32))
    assert rs.open_query(TERMINAL, ts.seal_query(os.urandom(16), DK, NOW).payload, NOW).audit_head
