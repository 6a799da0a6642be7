"""Sealed sessions: golden vectors, round trips, tamper, ticket refusals, shared processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.session import RegionalSessions, SealedQuery, TerminalSession
from tests.protocol.helpers import DK, NOW, QID, REGION, TERMINAL, identity, kem
from tests.protocol.make_vectors import RESPONSE, build, session_from

VEC = json.loads((Path(__file__).parent / "vectors" / "envelope_v1.json").read_text())


def regional(keys=None, region=REGION, kem_key=None, **kw) -> RegionalSessions:
    pinned = keys if keys is not None else {TERMINAL: [identity().public_key()]}
    return RegionalSessions(
        region=region, kem_private=kem_key or kem(), terminal_keys=lambda t: pinned.get(t, []), **kw
    )


def terminal(tid=TERMINAL, id_key=None, kem_pub=None, now=NOW, lifetime=86400.0):
    return TerminalSession.new(
        region=REGION,
        terminal_id=tid,
        identity_key=id_key or identity(tid),
        regional_kem_public=kem_pub or kem().public_key(),
        now=now,
        lifetime=lifetime,
    )


def reason_of(exc: pytest.ExceptionInfo[EnvelopeError]) -> str:
    return exc.value.reason or ""


def test_golden_vector_rederived_byte_for_byte() -> None:
    assert build(VEC) == {k: VEC[k] for k in ("query", "query_nonce", "response")}


def test_golden_vector_opens_on_both_sides() -> None:
    opened = regional().open_query(TERMINAL, bytes.fromhex(VEC["query"]), NOW + 5)
    assert (opened.terminal_id, opened.query_id, opened.dk) == (TERMINAL, QID, DK)
    assert opened.nonce.hex() == VEC["query_nonce"] and opened.timestamp == NOW
    ts = session_from(VEC)
    sq = ts.seal_query(QID, DK, NOW)  # same rng stream: registers the vector's nonce
    assert sq.nonce.hex() == VEC["query_nonce"]
    nonce, resp = ts.open_response(bytes.fromhex(VEC["response"]))
    assert nonce == sq.nonce and resp == RESPONSE


def test_round_trip_and_response_bound_to_query() -> None:
    ts, rs = terminal(), regional()
    q1, q2 = ts.seal_query(b"a" * 16, DK, NOW), ts.seal_query(b"b" * 16, DK, NOW)
    o1 = rs.open_query(TERMINAL, q1.payload, NOW)
    o2 = rs.open_query(TERMINAL, q2.payload, NOW)
    r2 = rs.seal_response(o2, Response(b"b" * 16, "NO_MATCH", 3))
    # splice: response to q2 relabelled as an answer to q1 is refused
    spliced = r2[:2] + q1.nonce + r2[14:]
    with pytest.raises(EnvelopeError):
        ts.open_response(spliced)
    assert ts.open_response(r2) == (q2.nonce, Response(b"b" * 16, "NO_MATCH", 3))
    with pytest.raises(EnvelopeError):  # answered once; no longer pending
        ts.open_response(r2)
    with pytest.raises(EnvelopeError):  # response query_id must match
        rs.seal_response(o1, Response(b"b" * 16, "NO_MATCH"))


@settings(max_examples=40, deadline=None)
@given(
    qid=st.binary(min_size=16, max_size=16),
    number=st.from_regex(r"[0-9A-Z]{1,22}", fullmatch=True),
    outcome=st.sampled_from(["NO_MATCH", "POSSIBLE_MATCH", "ERROR"]),
    lv=st.none() | st.integers(0, 2**40),
    skew=st.floats(-120, 120),
)
def test_property_round_trip(qid, number, outcome, lv, skew) -> None:
    ts, rs = TS, RS
    dk = DocumentKey("UTO", "P", number)
    sq = ts.seal_query(qid, dk, NOW + skew)
    opened = rs.open_query(TERMINAL, sq.payload, NOW)
    assert (opened.query_id, opened.dk) == (qid, dk)
    resp = Response(qid, outcome, lv, {"status": "lost"} if outcome == "POSSIBLE_MATCH" else None)
    assert ts.open_response(rs.seal_response(opened, resp)) == (sq.nonce, resp)


TS = terminal()
RS = regional()
Q0 = TS.seal_query(QID, DK, NOW)


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, len(Q0.payload) - 1), bit=st.integers(0, 7))
def test_property_flipped_query_byte_refused(pos, bit) -> None:
    bad = bytearray(Q0.payload)
    bad[pos] ^= 1 << bit
    with pytest.raises(EnvelopeError):
        regional().open_query(TERMINAL, bytes(bad), NOW)


@settings(max_examples=100, deadline=None)
@given(pos=st.integers(0, 200), bit=st.integers(0, 7))
def test_property_flipped_response_byte_refused(pos, bit) -> None:
    ts, rs = terminal(), RS
    sq = ts.seal_query(QID, DK, NOW)
    payload = rs.seal_response(rs.open_query(TERMINAL, sq.payload, NOW), RESPONSE)
    bad = bytearray(payload)
    bad[pos % len(bad)] ^= 1 << bit
    with pytest.raises(EnvelopeError):
        ts.open_response(bytes(bad))
    assert ts.open_response(payload)[1] == RESPONSE  # the genuine one still opens


def test_truncated_and_wrong_version_refused() -> None:
    with pytest.raises(EnvelopeError) as e:
        RS.open_query(TERMINAL, Q0.payload[:3], NOW)
    assert reason_of(e) == "malformed"
    with pytest.raises(EnvelopeError) as e:
        RS.open_query(TERMINAL, b"\x02" + Q0.payload[1:], NOW)
    assert reason_of(e) == "version"
    with pytest.raises(EnvelopeError) as e:
        RS.open_query(TERMINAL, Q0.payload[:-1], NOW)
    assert reason_of(e) == "aead"


@pytest.mark.parametrize(
    ("make", "topic", "now", "reason"),
    [
        (lambda: terminal(id_key=identity("intruder")), TERMINAL, NOW, "signature"),
        (lambda: terminal(kem_pub=kem("other-region").public_key()), TERMINAL, NOW, "ticket"),
        (terminal, "kiosk-8", NOW, "terminal_mismatch"),
        (lambda: terminal("kiosk-9"), "kiosk-9", NOW, "unknown_terminal"),
        (lambda: terminal(lifetime=60), TERMINAL, NOW + 61, "expired"),
        (terminal, TERMINAL, NOW + 121, "window"),
        (terminal, TERMINAL, NOW - 121, "window"),
    ],
)
def test_ticket_and_window_refusals(make, topic, now, reason) -> None:
    sq: SealedQuery = make().seal_query(QID, DK, NOW)
    with pytest.raises(EnvelopeError) as e:
        regional().open_query(topic, sq.payload, now)
    assert reason_of(e) == reason


def test_wrong_region_info_refused() -> None:
    rs = regional(region="eu-east")
    with pytest.raises(EnvelopeError) as e:
        rs.open_query(TERMINAL, Q0.payload, NOW)
    assert reason_of(e) == "ticket"


def test_cached_ticket_on_other_topic_refused_and_forget_terminal() -> None:
    keys = {TERMINAL: [identity().public_key()]}
    rs = regional(keys)
    rs.open_query(TERMINAL, Q0.payload, NOW)
    assert len(rs) == 1
    with pytest.raises(EnvelopeError) as e:
        rs.open_query("kiosk-8", Q0.payload, NOW)
    assert reason_of(e) == "terminal_mismatch"
    keys[TERMINAL] = []  # revoked: the cached session is refused at its next query
    with pytest.raises(EnvelopeError) as e:
        rs.open_query(TERMINAL, Q0.payload, NOW)
    assert reason_of(e) == "unknown_terminal"
    assert len(rs) == 1  # still cached until forgotten, but useless
    rs.forget_terminal(TERMINAL)
    assert len(rs) == 0
    with pytest.raises(EnvelopeError) as e:
        rs.open_query(TERMINAL, Q0.payload, NOW)
    assert reason_of(e) == "unknown_terminal"


def test_two_regional_processes_open_same_session_and_lru_bound() -> None:
    ts = terminal()
    a, b = regional(max_sessions=1), regional()
    qa, qb = ts.seal_query(b"a" * 16, DK, NOW), ts.seal_query(b"b" * 16, DK, NOW)
    oa, ob = a.open_query(TERMINAL, qa.payload, NOW), b.open_query(TERMINAL, qb.payload, NOW)
    assert ts.open_response(b.seal_response(ob, Response(b"b" * 16, "NO_MATCH")))[0] == qb.nonce
    assert ts.open_response(a.seal_response(oa, Response(b"a" * 16, "NO_MATCH")))[0] == qa.nonce
    other = terminal()
    a.open_query(TERMINAL, other.seal_query(QID, DK, NOW).payload, NOW)
    assert len(a) == 1  # bounded


def test_resend_same_query_id_gets_fresh_nonce() -> None:
    ts = terminal()
    s1, s2 = ts.seal_query(QID, DK, NOW), ts.seal_query(QID, DK, NOW)
    assert s1.nonce != s2.nonce and s1.payload != s2.payload
    o1, o2 = RS.open_query(TERMINAL, s1.payload, NOW), RS.open_query(TERMINAL, s2.payload, NOW)
    assert o1.query_id == o2.query_id and o1.nonce != o2.nonce


def test_hit_and_no_hit_responses_are_the_same_size_on_the_wire() -> None:
    """The broker sees sizes: a POSSIBLE_MATCH (with its record) must not stand out."""
    ts, rs = terminal(), regional()
    record = {
        "status": "STOLEN",
        "reporting_country": "UTO",
        "reference": "SLTD/2026/" + "9" * 40,
        "document_type": "PASSPORT",
        "reported_on": "2026-11-30",
    }
    sizes = {}
    for i, (outcome, kw) in enumerate(
        [
            ("NO_MATCH", {"list_version": 7}),
            ("POSSIBLE_MATCH", {"list_version": 7, "record": record}),
            ("ERROR", {"reason": "index_unavailable"}),
        ]
    ):
        qid = bytes([i]) * 16
        opened = rs.open_query(TERMINAL, ts.seal_query(qid, DK, NOW).payload, NOW + 1)
        wire = rs.seal_response(opened, Response(qid, outcome, **kw))
        assert ts.open_response(wire)[1].outcome == outcome
        sizes[outcome] = len(wire)
    assert len(set(sizes.values())) == 1, sizes


def test_unpadded_body_refused() -> None:
    from firmware.protocol.messages import (  # noqa: PLC0415
        RESPONSE_BLOCK,
        decode_response_body,
        encode_response_body,
    )

    body = encode_response_body(Response(QID, "NO_MATCH", list_version=1))
    assert len(body) == RESPONSE_BLOCK
    assert decode_response_body(QID, body).list_version == 1
    with pytest.raises(EnvelopeError, match="padded"):
        decode_response_body(QID, body.rstrip(b"\0"))
    with pytest.raises(EnvelopeError, match="JSON"):
        decode_response_body(QID, body[:-1] + b"x")
