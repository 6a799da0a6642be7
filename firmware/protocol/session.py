"""Sealed query sessions: one public-key operation per terminal session, AEAD per query.

See docs/protocol.md for byte layouts and the threat model. Summary:

* The terminal seals a session ticket to the regional X25519 KEM key with HPKE base mode
  (X25519, HKDF-SHA256, ChaCha20-Poly1305). It carries the session secret ``S`` and an
  Ed25519 signature by the terminal identity. Any regional process opens it once and caches.
* Query: ``ver|type|ticket_len|ticket|nonce12`` + ChaCha20-Poly1305 under
  ``k_q = HKDF(S, info="fieldterm/v1 query key"|sid)``, AAD = header + terminal id.
* Response: ``ver|type|query_nonce12|response_nonce16`` + ChaCha20-Poly1305 under a key and
  nonce from ``HKDF(S, salt=qnonce|rnonce, info="fieldterm/v1 response"|sid)``, AAD =
  header + query id.
* Resend (type ``0x53``): a query whose document key is an inner box sealed to the
  regional's KEM key at acceptance (:mod:`firmware.protocol.pending`); the same envelope
  and AEAD as a query, with a fresh nonce and timestamp; the regional opens the box after
  the AEAD and the time window.
* Audit head (issue 14): a query or resend may end with the terminal's audit chain head,
  ``seq u64 ‖ mac(32)`` (:data:`HEAD`), inside the AEAD; a regional keeps each terminal's
  last head and answers with the one it held (``Response.anchor``), so a kiosk whose card
  lost or replaced its audit log finds out. Queries without it still open.
* Time hint: a query that opens but whose time (or its ticket's) is outside the window is
  answered, once, with a response-sized envelope whose body is ``0x54|regional ms|query
  ms|Ed25519 signature`` by the regional signing key, bound to the session, query id and
  query nonce. The terminal adopts the offset for protocol time only (docs/time.md).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware.errors import EnvelopeError
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import (
    RESPONSE_BLOCK,
    Response,
    decode_response_body,
    encode_response_body,
)
from firmware.protocol.pending import BOX_LEN, SealedDocumentKey, open_document_key
from firmware.protocol.topics import validate_id

VERSION = 1
TYPE_QUERY = 0x51  # "Q"
TYPE_RESPONSE = 0x52  # "R"
TYPE_RESEND = 0x53  # "S": a query carrying a sealed document key (firmware.protocol.pending)
TICKET_VERSION = 1
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
SIG_LABEL = b"fieldterm/v1 session signature\x00"
QUERY_KEY_INFO = b"fieldterm/v1 query key"
RESPONSE_INFO = b"fieldterm/v1 response"
NONCE_LEN = 12
RNONCE_LEN = 16
_TICKET_FIXED = struct.Struct(">16sQQ32s64s")  # sid, issued ms, expires ms, S, signature
_Q_PT = struct.Struct(">16sQ")  # query id, timestamp ms
_MAX_PENDING = 4096
#: The optional audit head at the end of a query's plaintext: audit seq, chain MAC.
HEAD = struct.Struct(">Q32s")
#: The largest audit seq a query may carry (a signed 64-bit integer, as SQLite stores it).
MAX_AUDIT_SEQ = (1 << 63) - 1
#: First byte of a time-hint body (a response body starts with its BODY_VERSION, 0x02).
HINT_BODY = 0x54  # "T"
HINT_LABEL = b"fieldterm/v1 time hint\x00"
_HINT_TIMES = struct.Struct(">QQ")  # regional time ms, the query's timestamp ms
#: Every query's document key is zero-padded to this many bytes, so a query's size says
#: nothing of the document type or number length (the longest key, 3 + 1 + 1 + 1 + 22
#: characters, fits; DocumentKey never holds a NUL).
QUERY_KEY_SIZE = 32
#: The longest ticket lifetime a regional accepts (24 h, plus slack for the window).
MAX_TICKET_LIFETIME = 86400.0


def ticket_info(region: str) -> bytes:
    """HPKE ``info`` for tickets of ``region``."""
    return b"fieldterm/v1 ticket " + region.encode("ascii")


def _sig_input(  # noqa: PLR0917 - fixed field order of the signed message
    region: str, tid: str, sid: bytes, issued: int, expires: int, s: bytes
) -> bytes:
    r, t = region.encode("ascii"), tid.encode("ascii")
    return (
        b"".join(
            (SIG_LABEL, bytes([len(r)]), r, bytes([len(t)]), t, sid),
        )
        + struct.pack(">QQ", issued, expires)
        + hashlib.sha256(s).digest()
    )


def _hkdf(secret: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(secret)


def _query_key(secret: bytes, sid: bytes) -> bytes:
    return _hkdf(secret, None, QUERY_KEY_INFO + sid, 32)


def _query_aead(secret: bytes, sid: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_query_key(secret, sid))


def _response_key(secret: bytes, sid: bytes, qnonce: bytes, rnonce: bytes) -> tuple[bytes, bytes]:
    okm = _hkdf(secret, qnonce + rnonce, RESPONSE_INFO + sid, 32 + NONCE_LEN)
    return okm[:32], okm[32:]


def pad_document_key(dk: DocumentKey) -> bytes:
    """``dk.canonical()`` zero-padded to :data:`QUERY_KEY_SIZE` (one query size for every
    document type and number length)."""
    raw = dk.canonical()
    if len(raw) > QUERY_KEY_SIZE:
        raise EnvelopeError(f"document key: longer than {QUERY_KEY_SIZE} bytes")
    return raw + bytes(QUERY_KEY_SIZE - len(raw))


@dataclass(frozen=True)
class SealedQuery:
    """A query envelope ready to publish; ``nonce`` matches it to its response."""

    payload: bytes
    nonce: bytes


class TerminalSession:
    """Terminal side of one session. Create with :meth:`new`; not thread-safe."""

    def __init__(
        self,
        *,
        region: str,
        terminal_id: str,
        session_id: bytes,
        secret: bytes,
        ticket: bytes,
        expires_at: float,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.region = validate_id("region", region)
        self.terminal_id = validate_id("terminal", terminal_id)
        self.session_id = session_id
        self.ticket = ticket
        self.expires_at = expires_at
        self._secret = secret
        self._rng = rng
        self._aead = _query_aead(secret, session_id)
        self._tid = terminal_id.encode("ascii")
        self._prefix = bytes([VERSION, TYPE_QUERY]) + struct.pack(">H", len(ticket)) + ticket
        self._resend_prefix = bytes([VERSION, TYPE_RESEND]) + self._prefix[2:]
        self._pending: OrderedDict[bytes, bytes] = OrderedDict()
        #: Gives the terminal's audit head ``(seq, mac)`` to put in each query, or None.
        self.audit_head: Callable[[], tuple[int, bytes] | None] | None = None

    @classmethod
    def new(
        cls,
        *,
        region: str,
        terminal_id: str,
        identity_key: Ed25519PrivateKey,
        regional_kem_public: X25519PublicKey,
        now: float,
        lifetime: float = 86400,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> TerminalSession:
        """Start a session: one Ed25519 signature and one HPKE seal (~150 µs)."""
        validate_id("region", region)
        validate_id("terminal", terminal_id)
        secret, sid = rng(32), rng(16)
        issued, expires = int(now * 1000), int((now + lifetime) * 1000)
        sig = identity_key.sign(_sig_input(region, terminal_id, sid, issued, expires, secret))
        t = terminal_id.encode("ascii")
        plain = (
            bytes([TICKET_VERSION, len(t)])
            + t
            + _TICKET_FIXED.pack(sid, issued, expires, secret, sig)
        )
        ticket = SUITE.encrypt(plain, regional_kem_public, info=ticket_info(region))
        return cls(
            region=region,
            terminal_id=terminal_id,
            session_id=sid,
            secret=secret,
            ticket=ticket,
            expires_at=expires / 1000,
            rng=rng,
        )

    def seal_query(
        self, query_id: bytes, dk: DocumentKey | SealedDocumentKey, now: float
    ) -> SealedQuery:
        """Seal one query (AEAD only). The outbox may reseal the same query id after a
        restart: given a :class:`SealedDocumentKey` (the outbox's inner box), the envelope
        is a resend (type ``0x53``) carrying the box instead of the key."""
        if len(query_id) != 16:
            raise EnvelopeError("query_id: must be 16 bytes")
        nonce = self._rng(NONCE_LEN)
        if isinstance(dk, SealedDocumentKey):
            header = self._resend_prefix + nonce
            body = dk.box
        else:
            header = self._prefix + nonce
            body = pad_document_key(dk)
        pt = _Q_PT.pack(query_id, int(now * 1000)) + body
        head = self.audit_head() if self.audit_head is not None else None
        if head is not None:
            pt += HEAD.pack(*head)
        ct = self._aead.encrypt(nonce, pt, header + self._tid)
        self._pending[nonce] = query_id
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        return SealedQuery(header + ct, nonce)

    def open_response(self, payload: bytes) -> tuple[bytes, Response]:
        """Open a response: returns (query nonce it answers, response). EnvelopeError if the
        envelope is malformed, not for a pending query of this session, or fails AEAD."""
        qnonce, query_id, body = self._open_reply_body(payload)
        response = decode_response_body(query_id, body)
        del self._pending[qnonce]
        return qnonce, response

    def _open_reply_body(self, payload: bytes) -> tuple[bytes, bytes, bytes]:
        """``(query nonce, query id, plaintext body)`` of a reply to a pending query of this
        session (a response or a time hint); EnvelopeError if malformed or unauthentic."""
        hl = 2 + NONCE_LEN + RNONCE_LEN
        if len(payload) < hl + 16 or payload[0] != VERSION or payload[1] != TYPE_RESPONSE:
            raise EnvelopeError("response: malformed or wrong version/type")
        qnonce, rnonce = payload[2 : 2 + NONCE_LEN], payload[2 + NONCE_LEN : hl]
        query_id = self._pending.get(qnonce)
        if query_id is None:
            raise EnvelopeError("response: answers no pending query of this session")
        key, nonce = _response_key(self._secret, self.session_id, qnonce, rnonce)
        try:
            body = ChaCha20Poly1305(key).decrypt(nonce, payload[hl:], payload[:hl] + query_id)
        except InvalidTag:
            raise EnvelopeError("response: authentication failed") from None
        return qnonce, query_id, body

    def open_reply(
        self, payload: bytes, regional_sign_public: Ed25519PublicKey | None
    ) -> tuple[bytes, Response | TimeHint]:
        """Like :meth:`open_response`, but a reply may also be a signed time hint (the
        regional refused the query's time). A hint is accepted only if it opens under this
        session, answers a pending query (its id is AAD, its nonce is in the key) and
        carries the regional's signature over both. A hint spends the nonce it answers:
        the caller reseals the same query id with corrected time. Without a pinned
        regional key a hint is refused (EnvelopeError), never trusted on the AEAD alone."""
        qnonce, query_id, body = self._open_reply_body(payload)
        if body[:1] != bytes([HINT_BODY]):
            response = decode_response_body(query_id, body)
            del self._pending[qnonce]
            return qnonce, response
        hint = _decode_hint(body, query_id)
        if regional_sign_public is None:
            raise EnvelopeError("time hint: no pinned regional signing key to check it with")
        msg = _hint_sig_input(
            self.region, self.terminal_id, self.session_id, query_id, qnonce, hint
        )
        try:
            regional_sign_public.verify(hint.signature, msg)
        except InvalidSignature:
            raise EnvelopeError("time hint: not signed by the pinned regional key") from None
        del self._pending[qnonce]
        return qnonce, hint


@dataclass(frozen=True, slots=True)
class _Session:
    """One open ticket in the regional's cache. It keeps the 32-byte query key, not a
    ``ChaCha20Poly1305`` object: that object holds about 2.2 kB of cipher state
    (cryptography 50, measured), so 100,000 cached sessions would cost some 220 MB, and
    making one per query costs about 1 us."""

    terminal_id: str
    session_id: bytes
    secret: bytes
    expires_at: float
    query_key: bytes = field(repr=False)
    issued_at: float = 0.0
    #: Raw public key that verified the ticket: rechecked against the pinned keys per query.
    verified_by: bytes = b""

    def query_aead(self) -> ChaCha20Poly1305:
        return ChaCha20Poly1305(self.query_key)


@dataclass(frozen=True)
class OpenedQuery:
    """An authenticated query. ``nonce`` is the replay key for the shared seen-nonce store."""

    terminal_id: str
    session_id: bytes
    query_id: bytes
    nonce: bytes
    timestamp: float
    dk: DocumentKey
    session: _Session = field(repr=False, compare=False)
    #: The terminal's audit head ``(seq, mac)`` if the query carried one.
    audit_head: tuple[int, bytes] | None = None
    #: It came as a resend (type ``0x53``): the kiosk had already shown the officer an
    #: offline answer or UNKNOWN for this scan, so its answer is late (the hit alert says so).
    resend: bool = False


def _fail(reason: str, msg: str) -> EnvelopeError:
    return EnvelopeError(f"query refused ({reason}): {msg}", reason=reason)


@dataclass(frozen=True)
class TimeHint:
    """The regional's signed time, sent instead of an answer when a query's time (or its
    session ticket's) is outside the window. ``regional_time`` is when the regional saw
    the query; ``query_time`` is the timestamp the query carried."""

    query_id: bytes
    regional_time: float
    query_time: float
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class StaleQuery:
    """A query that authenticated (AEAD opened under a verified ticket) but whose time is
    out of the window: the regional may answer it with a :class:`TimeHint`."""

    terminal_id: str
    session_id: bytes
    query_id: bytes
    nonce: bytes
    timestamp: float
    session: _Session = field(repr=False, compare=False)


class OutOfWindow(EnvelopeError):
    """Refusal ``window``: the query is authentic but its clock is off. ``stale`` says
    which query, so the regional can seal a time hint for it (see docs/time.md)."""

    def __init__(self, stale: StaleQuery) -> None:
        super().__init__(
            "query refused (window): query timestamp outside the accepted window",
            reason="window",
        )
        self.stale = stale


def _raise_if_skewed(  # noqa: PLR0917 - the parts of one envelope
    sess: _Session,
    topic_terminal: str,
    payload: bytes,
    hl: int,
    nonce: bytes,
    now: float,
    window: float,
) -> None:
    """The ticket's times are off (expired, or issued in the future): if the query opens
    and its own timestamp is off too, the terminal's clock is wrong: raise
    :class:`OutOfWindow` so it can be told the time. Otherwise return (the caller then
    refuses the ticket for what it is)."""
    try:
        pt = sess.query_aead().decrypt(nonce, payload[hl:], payload[:hl] + topic_terminal.encode())
    except InvalidTag:
        raise _fail("aead", "query authentication failed") from None
    query_id, ts_ms = _Q_PT.unpack_from(pt)
    if abs(now - ts_ms / 1000) > window:
        raise OutOfWindow(
            StaleQuery(sess.terminal_id, sess.session_id, query_id, nonce, ts_ms / 1000, sess)
        )


def _hint_sig_input(  # noqa: PLR0917 - fixed field order of the signed message
    region: str, tid: str, sid: bytes, query_id: bytes, qnonce: bytes, hint: TimeHint
) -> bytes:
    r, t = region.encode("ascii"), tid.encode("ascii")
    return b"".join(
        (HINT_LABEL, bytes([len(r)]), r, bytes([len(t)]), t, sid, query_id, qnonce)
    ) + _HINT_TIMES.pack(_ms(hint.regional_time), _ms(hint.query_time))


def _ms(t: float) -> int:
    """``t`` in whole ms, as a hint carries it: a query's u64 timestamp near 2**64 ms comes
    back from float seconds as 2**64, which no u64 holds (found by tests/fuzz/fuzz_envelope.py)."""
    return min(max(round(t * 1000), 0), 2**64 - 1)


def _decode_hint(body: bytes, query_id: bytes) -> TimeHint:
    n = 1 + _HINT_TIMES.size + 64
    if len(body) % RESPONSE_BLOCK or len(body) < n or any(body[n:]):
        raise EnvelopeError("time hint: bad length or padding")
    reg_ms, q_ms = _HINT_TIMES.unpack_from(body, 1)
    return TimeHint(query_id, reg_ms / 1000, q_ms / 1000, body[1 + _HINT_TIMES.size : n])


class RegionalSessions:
    """Regional side: opens tickets once (HPKE + Ed25519), then per query a dict lookup + AEAD."""

    def __init__(
        self,
        *,
        region: str,
        kem_private: X25519PrivateKey,
        terminal_keys: Callable[[str], Sequence[Ed25519PublicKey]],
        window: float = 120.0,
        max_sessions: int = 100_000,
        max_lifetime: float = MAX_TICKET_LIFETIME,
    ) -> None:
        self.region = validate_id("region", region)
        self._kem = kem_private
        self._keys = terminal_keys
        self.window = window
        self.max_sessions = max_sessions
        self.max_lifetime = max_lifetime
        self._info = ticket_info(region)
        self._cache: OrderedDict[bytes, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def _open_ticket(self, topic_terminal: str, ticket: bytes) -> _Session:
        try:
            plain = SUITE.decrypt(ticket, self._kem, info=self._info)
        except Exception:  # the library raises various errors for bad ciphertexts
            raise _fail("ticket", "cannot open session ticket") from None
        if len(plain) < 2 or plain[0] != TICKET_VERSION:
            raise _fail("ticket", "bad ticket version")
        tl = plain[1]
        if len(plain) != 2 + tl + _TICKET_FIXED.size:
            raise _fail("ticket", "bad ticket length")
        try:
            tid = validate_id("terminal", plain[2 : 2 + tl].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise _fail("ticket", "bad terminal id in ticket") from None
        sid, issued, expires, secret, sig = _TICKET_FIXED.unpack_from(plain, 2 + tl)
        if tid != topic_terminal:
            raise _fail("terminal_mismatch", "ticket belongs to another terminal")
        if expires - issued > (self.max_lifetime + self.window) * 1000:
            raise _fail("lifetime", "ticket lifetime longer than the regional accepts")
        keys = list(self._keys(tid))
        if not keys:
            raise _fail("unknown_terminal", "terminal unknown or revoked")
        msg = _sig_input(self.region, tid, sid, issued, expires, secret)
        for pub in keys:
            try:
                pub.verify(sig, msg)
                break
            except InvalidSignature:
                continue
        else:
            raise _fail("signature", "ticket not signed by a pinned terminal key")
        return _Session(
            tid,
            sid,
            secret,
            expires / 1000,
            _query_key(secret, sid),
            issued_at=issued / 1000,
            verified_by=pub.public_bytes_raw(),
        )

    def _check_key(self, sess: _Session) -> None:
        """The key that verified the ticket must still be pinned and valid now (revocation,
        rotation and a key's ``not_after`` end cached sessions at their next query)."""
        keys = self._keys(sess.terminal_id)
        if not keys:
            raise _fail("unknown_terminal", "terminal unknown or revoked")
        if not any(k.public_bytes_raw() == sess.verified_by for k in keys):
            raise _fail("key_retired", "the key that signed the ticket is no longer valid")

    def has_session(self, ticket: bytes) -> bool:
        """Whether ``ticket`` is already open in the cache (so a query costs no public-key
        work); the regional's refusal rate limit lets such queries through."""
        return hashlib.sha256(ticket).digest() in self._cache

    def open_query(self, topic_terminal: str, payload: bytes, now: float) -> OpenedQuery:
        """Authenticate and decrypt one query envelope received on ``topic_terminal``'s topic."""
        if len(payload) < 4:
            raise _fail("malformed", "envelope too short")
        if payload[0] != VERSION or payload[1] not in (TYPE_QUERY, TYPE_RESEND):
            raise _fail("version", "unknown envelope version or type")
        tlen = int.from_bytes(payload[2:4], "big")
        hl = 4 + tlen + NONCE_LEN
        if len(payload) < hl + 16 + _Q_PT.size:
            raise _fail("malformed", "envelope truncated")
        ticket = payload[4 : 4 + tlen]
        ck = hashlib.sha256(ticket).digest()
        sess = self._cache.get(ck)
        if sess is None:
            sess = self._open_ticket(topic_terminal, ticket)
            self._cache[ck] = sess
            while len(self._cache) > self.max_sessions:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(ck)
            if sess.terminal_id != topic_terminal:
                raise _fail("terminal_mismatch", "ticket belongs to another terminal")
        nonce = payload[4 + tlen : hl]
        if now > sess.expires_at or sess.issued_at > now + self.window:
            _raise_if_skewed(sess, topic_terminal, payload, hl, nonce, now, self.window)
        if now > sess.expires_at:
            raise _fail("expired", "session ticket expired; terminal must start a new session")
        self._check_key(sess)
        try:
            pt = sess.query_aead().decrypt(
                nonce, payload[hl:], payload[:hl] + topic_terminal.encode()
            )
        except InvalidTag:
            raise _fail("aead", "query authentication failed") from None
        query_id, ts_ms = _Q_PT.unpack_from(pt)
        ts = ts_ms / 1000
        if abs(now - ts) > self.window:
            raise OutOfWindow(
                StaleQuery(sess.terminal_id, sess.session_id, query_id, nonce, ts, sess)
            )
        if sess.issued_at > now + self.window:
            raise _fail("future", "session ticket issued in the future")
        rest, head = pt[_Q_PT.size :], None
        if len(rest) in (BOX_LEN + HEAD.size, QUERY_KEY_SIZE + HEAD.size):
            rest, (hseq, hmac) = rest[: -HEAD.size], HEAD.unpack(rest[-HEAD.size :])
            if hseq > MAX_AUDIT_SEQ:  # a kiosk's audit log never gets there; SQLite can't hold it
                at = _Q_PT.size + len(rest)
                raise _fail(
                    "malformed", f"audit head seq {hseq} above 2**63-1 (plaintext byte {at})"
                )
            head = (hseq, hmac)
        if payload[1] == TYPE_RESEND:
            dk = open_document_key(self._kem, self.region, sess.terminal_id, query_id, rest)
            return OpenedQuery(
                sess.terminal_id, sess.session_id, query_id, nonce, ts, dk, sess, head, resend=True
            )
        try:
            state, cat, number = rest.rstrip(b"\0").decode("ascii").split("|")
            dk = DocumentKey(state, cat, number)
        except ValueError:
            raise _fail("malformed", "bad document key in query") from None
        return OpenedQuery(sess.terminal_id, sess.session_id, query_id, nonce, ts, dk, sess, head)

    def seal_response(
        self, query: OpenedQuery, response: Response, rng: Callable[[int], bytes] = os.urandom
    ) -> bytes:
        """Seal ``response`` bound to ``query`` (its nonce in clear, its id as AAD)."""
        if response.query_id != query.query_id:
            raise EnvelopeError("response: query_id differs from the query it answers")
        rnonce = rng(RNONCE_LEN)
        header = bytes([VERSION, TYPE_RESPONSE]) + query.nonce + rnonce
        key, nonce = _response_key(query.session.secret, query.session_id, query.nonce, rnonce)
        body = encode_response_body(response)
        return header + ChaCha20Poly1305(key).encrypt(nonce, body, header + query.query_id)

    def seal_time_hint(
        self,
        stale: StaleQuery,
        now: float,
        sign_key: Ed25519PrivateKey,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> bytes:
        """Seal a signed :class:`TimeHint` for ``stale`` like a response: the same header,
        key schedule and padded size, so the broker cannot tell it from an answer."""
        hint = TimeHint(stale.query_id, round(now * 1000) / 1000, stale.timestamp, b"")
        sig = sign_key.sign(
            _hint_sig_input(
                self.region, stale.terminal_id, stale.session_id, stale.query_id, stale.nonce, hint
            )
        )
        raw = (
            bytes([HINT_BODY])
            + _HINT_TIMES.pack(_ms(hint.regional_time), _ms(stale.timestamp))
            + sig
        )
        body = raw + bytes(RESPONSE_BLOCK - len(raw))
        rnonce = rng(RNONCE_LEN)
        header = bytes([VERSION, TYPE_RESPONSE]) + stale.nonce + rnonce
        key, nonce = _response_key(stale.session.secret, stale.session_id, stale.nonce, rnonce)
        return header + ChaCha20Poly1305(key).encrypt(nonce, body, header + stale.query_id)

    def forget_terminal(self, terminal_id: str) -> None:
        """Drop every cached session of ``terminal_id`` (revocation or key rotation)."""
        for ck in [k for k, v in self._cache.items() if v.terminal_id == terminal_id]:
            del self._cache[ck]
