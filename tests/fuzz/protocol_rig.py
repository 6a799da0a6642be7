"""What the envelope and ticket harnesses share: fixed keys, the regional's refusal reasons,
and valid sealed queries and tickets made by the real terminal code, to mutate.

Keys are derived from fixed labels, so a crashing input replays exactly
(``python tests/fuzz/fuzz_envelope.py crash-<sha>``). The regional side is the real
:class:`~firmware.protocol.session.RegionalSessions` behind the real
:class:`~host_tools.regional.guard.RefusalGuard`, driven the way
:meth:`host_tools.regional.service.RegionalService.on_query` drives them, without its I/O
(:func:`handle`): every input must end as an answer (a sealed response), a signed time hint,
or a refusal with a reason; any other exception escaping is a crash.

Import this module only after the product modules, inside ``atheris.instrument_imports()``
(the harnesses do), so that coverage is collected over the product's code.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.errors import EnvelopeError
from firmware.protocol import session as sess
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.pending import SealedDocumentKey, seal_document_key
from host_tools.regional.guard import RefusalGuard

REGION = "central"
TID = "kiosk-001"  # the terminal whose topic the fuzzer publishes on
OTHER = "kiosk-002"  # another pinned terminal (terminal_mismatch)
UNKNOWN = "kiosk-404"  # no pinned key (unknown_terminal)
RETIRED = "kiosk-003"  # pinned with a key that is not the one that signed (key_retired)
NOW = 1_800_000_000.0  # the regional's clock in the harnesses (2027-01-15)
WINDOW = 120.0
DK = DocumentKey("UTO", "P", "L898902C3")

#: Every refusal reason the regional's session layer and guard may give (docs/protocol.md,
#: host_tools/regional/guard.py). A refusal with any other reason is a harness failure.
REASONS = frozenset(
    {
        "malformed", "version", "ticket", "terminal_mismatch", "lifetime",
        "unknown_terminal", "signature", "key_retired", "expired", "aead", "window",
        "future", "pending", "rate_limited",
    }
)  # fmt: skip


def _x25519(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def _ed25519(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


KEM = _x25519("fuzz regional kem")
SIGN = _ed25519("fuzz regional sign")
IDENTITY = {tid: _ed25519(f"fuzz identity {tid}") for tid in (TID, OTHER, UNKNOWN, RETIRED)}
#: RETIRED's ticket is signed by IDENTITY[RETIRED]; terminals.json pins only this new key.
ROTATED = _ed25519("fuzz identity kiosk-003 rotated")


def _pinned() -> dict[str, list[Ed25519PublicKey]]:
    return {
        TID: [IDENTITY[TID].public_key()],
        OTHER: [IDENTITY[OTHER].public_key()],
        RETIRED: [IDENTITY[RETIRED].public_key()],
    }


@dataclass
class Regional:
    """The regional's parsing state: sessions (with their ticket cache) and the guard.
    ``pinned`` may change between inputs (a rotation retires RETIRED's signing key)."""

    pinned: dict[str, list[Ed25519PublicKey]] = field(default_factory=_pinned)
    clock: list[float] = field(default_factory=lambda: [0.0])

    def __post_init__(self) -> None:
        self.sessions = sess.RegionalSessions(
            region=REGION,
            kem_private=KEM,
            terminal_keys=lambda tid: self.pinned.get(tid, ()),
            window=WINDOW,
            max_sessions=256,
        )
        self.guard = RefusalGuard(
            refusal_burst=50,
            refusal_rate=5.0,
            max_negative=4096,
            max_terminals=256,
            clock=lambda: self.clock[0],
        )
        self.outcomes: dict[str, int] = {}


def handle(reg: Regional, terminal: str, payload: bytes, now: float) -> str:
    """One query as ``RegionalService.on_query`` treats it, without I/O: the guard, the
    session layer, then a sealed answer or a signed time hint. Returns ``"answer"``,
    ``"hint"`` or ``"refused:<reason>"``. Raises only what the product lets escape (a crash)
    or AssertionError (an invariant broken)."""
    cheap = reg.guard.check(terminal, payload, reg.sessions.has_session)
    if cheap:
        assert cheap in REASONS, cheap
        if cheap != "rate_limited":
            reg.guard.refused(terminal, payload, cheap, known=True)
        return f"refused:{cheap}"
    try:
        q = reg.sessions.open_query(terminal, payload, now)
    except sess.OutOfWindow as exc:
        st = exc.stale
        assert st.terminal_id == terminal and len(st.query_id) == 16 and len(st.nonce) == 12
        hint = reg.sessions.seal_time_hint(st, now, SIGN)
        assert hint[:2] == bytes([sess.VERSION, sess.TYPE_RESPONSE])
        return "hint"
    except EnvelopeError as exc:
        reason = exc.reason or "invalid"
        assert reason in REASONS, (reason, str(exc))
        assert str(exc), "a refusal without a message"
        reg.guard.refused(terminal, payload, reason)
        return f"refused:{reason}"
    assert q.terminal_id == terminal, (q.terminal_id, terminal)
    assert len(q.query_id) == 16 and len(q.nonce) == sess.NONCE_LEN
    assert isinstance(q.dk, DocumentKey)
    assert abs(q.timestamp - now) <= WINDOW
    reg.sessions.seal_response(q, Response(q.query_id, "NO_MATCH", list_version=1))
    return "answer"


def terminal_session(
    tid: str = TID,
    *,
    identity: Ed25519PrivateKey | None = None,
    now: float = NOW,
    lifetime: float = 86400,
    seed: int = 0,
) -> sess.TerminalSession:
    """A session made by the real terminal code (deterministic secret and ids)."""
    rnd = random.Random(seed)
    return sess.TerminalSession.new(
        region=REGION,
        terminal_id=tid,
        identity_key=identity or IDENTITY[tid],
        regional_kem_public=KEM.public_key(),
        now=now,
        lifetime=lifetime,
        rng=rnd.randbytes,
    )


def box_for(query_id: bytes, tid: str = TID, dk: DocumentKey = DK) -> bytes:
    """A pending inner box (what a resend carries), sealed by the real kiosk code."""
    return seal_document_key(KEM.public_key(), REGION, tid, query_id, dk).box


QID = bytes(range(16))


@dataclass(frozen=True)
class Seed:
    """A valid envelope (as the terminal publishes it) with the session that made it."""

    name: str
    terminal: str  # the topic it is published on
    payload: bytes
    session: sess.TerminalSession


def seeds() -> list[Seed]:
    """Envelopes of every kind the regional treats differently (each made by the real
    terminal code): answered, resend, window, expired, future, mismatch, unknown, retired."""
    main = terminal_session(seed=1)
    out = [
        Seed("query", TID, main.seal_query(QID, DK, NOW).payload, main),
        Seed("resend", TID, main.seal_query(QID, _sealed(QID), NOW).payload, main),
        Seed("stale", TID, main.seal_query(QID, DK, NOW - 3600).payload, main),
    ]
    old = terminal_session(seed=2, now=NOW - 2 * 86400, lifetime=86400)
    out.append(Seed("expired", TID, old.seal_query(QID, DK, NOW).payload, old))
    early = terminal_session(seed=3, now=NOW + 3600)
    out.append(Seed("future", TID, early.seal_query(QID, DK, NOW).payload, early))
    other = terminal_session(OTHER, seed=4)
    out.append(Seed("mismatch", TID, other.seal_query(QID, DK, NOW).payload, other))
    unknown = terminal_session(UNKNOWN, seed=5)
    out.append(Seed("unknown", UNKNOWN, unknown.seal_query(QID, DK, NOW).payload, unknown))
    retired = terminal_session(RETIRED, seed=6)
    out.append(Seed("retired", RETIRED, retired.seal_query(QID, DK, NOW).payload, retired))
    long = terminal_session(seed=7, lifetime=10 * 86400)
    out.append(Seed("lifetime", TID, long.seal_query(QID, DK, NOW).payload, long))
    return out


def _sealed(query_id: bytes) -> SealedDocumentKey:
    return SealedDocumentKey(box_for(query_id))


def reseal(
    ts: sess.TerminalSession,
    plaintext: bytes,
    *,
    kind: int = sess.TYPE_QUERY,
    nonce: bytes = bytes(12),
    aad_terminal: str | None = None,
) -> bytes:
    """An envelope around ``plaintext`` (any bytes) that authenticates under ``ts``'s
    session key: it reaches the regional's parsing of what is inside the AEAD."""
    return envelope(
        ts._secret, ts.session_id, ts.ticket, aad_terminal or ts.terminal_id, plaintext,
        kind=kind, nonce=nonce,
    )  # fmt: skip


def envelope(
    secret: bytes,
    session_id: bytes,
    ticket: bytes,
    terminal: str,
    plaintext: bytes,
    *,
    kind: int = sess.TYPE_QUERY,
    nonce: bytes = bytes(12),
) -> bytes:
    """``ver|type|ticket_len|ticket|nonce`` + ChaCha20-Poly1305 of ``plaintext`` under the
    query key of (``secret``, ``session_id``), AAD = header + ``terminal``: the layout of
    docs/protocol.md, whatever the ticket holds."""
    header = bytes([sess.VERSION, kind]) + struct.pack(">H", len(ticket) & 0xFFFF)
    header += ticket + nonce
    aead = sess._query_aead(secret, session_id)
    return header + aead.encrypt(nonce, plaintext, header + terminal.encode())


def query_plaintext(query_id: bytes, ts_ms: int, body: bytes) -> bytes:
    """A query's plaintext: ``query id(16) | timestamp ms (u64) | body``."""
    return query_id + struct.pack(">Q", ts_ms & 0xFFFFFFFFFFFFFFFF) + body
