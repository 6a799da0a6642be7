"""Coverage-guided fuzz harness (atheris/libFuzzer) for the regional's session-ticket parsing.

Run directly with libFuzzer flags, e.g. ``python tests/fuzz/fuzz_ticket.py -runs=100000``,
or all harnesses through ``python -m tests.fuzz.run`` (``make fuzz``).

A ticket reaches the regional inside a query envelope; the first query of a session makes
it open the ticket (HPKE base mode to its KEM key, then the terminal's Ed25519 signature,
:meth:`RegionalSessions._open_ticket <firmware.protocol.session.RegionalSessions>`). Each
input builds one ticket and one envelope around it whose AEAD is right for the secret the
ticket carries, so a ticket that opens lets the query go on; the regional side is fresh for
every input (no cache hides the ticket path). Tickets:

- made by the real terminal code (``TerminalSession.new``) with a fuzzed clock, lifetime,
  terminal and signing key (pinned, another terminal's, retired);
- a plaintext laid out field by field with each field fuzzed (version, id length, id,
  session id, issued and expiry times up to 2**64-1, secret, a signature that is right for
  the fields or not, bytes cut or added), sealed with HPKE to the regional's key under the
  right ``info`` or another one;
- a real sealed ticket with structural mutations (its HPKE ``enc`` or ciphertext);
- raw bytes.

Allowed outcomes: an answer, a hint, or an EnvelopeError with a documented reason; tickets
made unmodified by the real code must give the outcome their fields imply.
"""

from __future__ import annotations

import hashlib
import struct
import sys

import atheris

with atheris.instrument_imports():
    from firmware.protocol import session as sess
    from host_tools.regional import guard as _guard  # noqa: F401 - instrumented for coverage
    from tests.fuzz import protocol_rig as rig

TERMINALS = (rig.TID, rig.OTHER, rig.UNKNOWN, rig.RETIRED)
KEYS = (*(rig.IDENTITY[t] for t in TERMINALS), rig.ROTATED)
REAL = rig.terminal_session(seed=11)
LIFETIMES = (60, 3600, 86400, 86400 + 120, 86400 + 121, 10 * 86400)
INFOS = (sess.ticket_info(rig.REGION), sess.ticket_info("other"), b"", b"fieldterm/v1 ticket")


def _u64(fdp: atheris.FuzzedDataProvider, around: float) -> int:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return int(around * 1000) + fdp.ConsumeIntInRange(-200_000_000, 200_000_000)
    if choice == 1:
        return (0, 1, 2**63, 2**64 - 1)[fdp.ConsumeIntInRange(0, 3)]
    if choice == 2:
        return fdp.ConsumeIntInRange(0, 2**64 - 1)
    return int(around * 1000)


def _by_the_client(fdp: atheris.FuzzedDataProvider) -> tuple[str, object, str | None]:
    tid = TERMINALS[fdp.ConsumeIntInRange(0, len(TERMINALS) - 1)]
    key = KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)] if fdp.ConsumeBool() else None
    issued = rig.NOW + fdp.ConsumeIntInRange(-3 * 86400, 3 * 86400) * fdp.ConsumeIntInRange(0, 1)
    lifetime = LIFETIMES[fdp.ConsumeIntInRange(0, len(LIFETIMES) - 1)]
    ts = rig.terminal_session(
        tid, identity=key, now=issued, lifetime=lifetime, seed=fdp.ConsumeIntInRange(0, 2**16)
    )
    q_time = rig.NOW + fdp.ConsumeIntInRange(-300, 300) * fdp.ConsumeIntInRange(0, 1)
    payload = ts.seal_query(rig.QID, rig.DK, q_time).payload
    expected = None
    if key is None or key is rig.IDENTITY[tid]:  # the independent expectation, by the fields
        expected = _expect(tid, issued, issued + lifetime, q_time)
    return tid, payload, expected


def _expect(tid: str, issued: float, expires: float, q_time: float) -> str:
    off = abs(q_time - rig.NOW) > rig.WINDOW
    if expires - issued > sess.MAX_TICKET_LIFETIME + rig.WINDOW:
        return "refused:lifetime"
    if tid == rig.UNKNOWN:
        return "refused:unknown_terminal"
    if rig.NOW > expires or issued > rig.NOW + rig.WINDOW:
        return "hint" if off else ("refused:expired" if rig.NOW > expires else "refused:future")
    return "hint" if off else "answer"


def _laid_out(fdp: atheris.FuzzedDataProvider) -> tuple[bytes, bytes, bytes]:
    """(ticket, secret, session id): a plaintext built field by field, then sealed."""
    if fdp.ConsumeBool():
        tid = TERMINALS[fdp.ConsumeIntInRange(0, len(TERMINALS) - 1)].encode()
    else:
        tid = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 70))
    sid = fdp.ConsumeBytes(16).ljust(16, b"\0")
    issued, expires = _u64(fdp, rig.NOW), _u64(fdp, rig.NOW + 86400)
    secret = fdp.ConsumeBytes(32).ljust(32, b"\0")
    sig = b"\0" * 64
    if fdp.ConsumeBool():
        try:  # the real signature over these fields, by some key
            t = tid.decode("ascii")
            msg = sess._sig_input(rig.REGION, t, sid, issued, expires, secret)
            sig = KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)].sign(msg)
        except (UnicodeDecodeError, ValueError):
            pass
    else:
        sig = fdp.ConsumeBytes(64).ljust(64, b"\0")
    version = 1 if fdp.ConsumeIntInRange(0, 7) else fdp.ConsumeIntInRange(0, 255)
    tl = len(tid) & 0xFF if fdp.ConsumeIntInRange(0, 7) else fdp.ConsumeIntInRange(0, 255)
    plain = (
        bytes([version, tl]) + tid + struct.pack(">16sQQ32s64s", sid, issued, expires, secret, sig)
    )
    cut = fdp.ConsumeIntInRange(0, 7)
    if cut == 0:
        plain = plain[: fdp.ConsumeIntInRange(0, len(plain))]
    elif cut == 1:
        plain += fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 32))
    info = INFOS[0] if fdp.ConsumeIntInRange(0, 7) else INFOS[fdp.ConsumeIntInRange(1, 3)]
    ticket = sess.SUITE.encrypt(plain, rig.KEM.public_key(), info=info)
    return ticket, secret, sid


def _mutated(fdp: atheris.FuzzedDataProvider) -> bytes:
    b = bytearray(REAL.ticket)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        pos = fdp.ConsumeIntInRange(0, len(b) - 1) if b else 0
        op = fdp.ConsumeIntInRange(0, 3)
        if op == 0 and b:
            b[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        elif op == 1:
            del b[fdp.ConsumeIntInRange(0, len(b)) :]
        elif op == 2:
            b[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 32))
        elif b:
            b[pos] = fdp.ConsumeIntInRange(0, 255)
    return bytes(b)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reg = rig.Regional()
    strategy = fdp.ConsumeIntInRange(0, 7)
    expected = None
    if strategy <= 1:
        terminal, payload, expected = _by_the_client(fdp)
        assert isinstance(payload, bytes)
    else:
        terminal = TERMINALS[fdp.ConsumeIntInRange(0, len(TERMINALS) - 1)]
        if strategy <= 5:
            ticket, secret, sid = _laid_out(fdp)
        elif strategy == 6:
            ticket, secret, sid = _mutated(fdp), REAL._secret, REAL.session_id
        else:
            ticket = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400))
            secret, sid = hashlib.sha256(ticket).digest(), bytes(16)
        q_time = int(rig.NOW * 1000) + fdp.ConsumeIntInRange(-200_000, 200_000)
        body = rig.query_plaintext(rig.QID, q_time, sess.pad_document_key(rig.DK))
        payload = rig.envelope(secret, sid, ticket, terminal, body)
    got = rig.handle(reg, terminal, payload, rig.NOW)
    if expected is not None:
        assert got == expected, (got, expected)
    if got in ("answer", "hint") and fdp.ConsumeBool():
        # the cached session, now from another terminal's topic: refused, never answered
        other = TERMINALS[(TERMINALS.index(terminal) + 1) % len(TERMINALS)]
        assert rig.handle(reg, other, payload, rig.NOW) == "refused:terminal_mismatch"


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
