"""Coverage-guided fuzz harness (atheris/libFuzzer) for the regional's query envelope parsing.

Run directly with libFuzzer flags, e.g. ``python tests/fuzz/fuzz_envelope.py -runs=100000``,
or all harnesses through ``python -m tests.fuzz.run`` (``make fuzz``).

The target is what a client holding a terminal certificate reaches with one MQTT payload on
its query topic: :class:`~host_tools.regional.guard.RefusalGuard` and
:meth:`RegionalSessions.open_query <firmware.protocol.session.RegionalSessions.open_query>`,
then the answer or the signed time hint (:func:`tests.fuzz.protocol_rig.handle`). Inputs:

- raw bytes;
- a valid envelope of each kind (made by the real terminal code: answered, resend, stale,
  expired, future, another terminal's, unknown, retired key, over-long lifetime) with a few
  structural mutations: bit flips, byte sets, inserts, deletes, truncation, a new ticket
  length field, another seed's ticket spliced in, a new version or type byte;
- an envelope that **authenticates** under a real session (the AEAD is recomputed, as a
  kiosk whose identity key is in the attacker's hands could), around a fuzzed plaintext:
  query id, any 64-bit timestamp, and a body that is a padded document key with fuzzed
  parts, a pending box (valid, mutated or another query's), or raw bytes.

The only allowed outcomes are an answer, a hint, or an :class:`EnvelopeError` whose reason
is a documented one; each unmutated seed must give its known outcome (the independent
expectation). Anything else escaping is a crash.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from firmware.protocol import session as sess
    from host_tools.regional import guard as _guard  # noqa: F401 - instrumented for coverage
    from tests.fuzz import protocol_rig as rig

SEEDS = rig.seeds()
REG = rig.Regional()
TERMINALS = (rig.TID, rig.OTHER, rig.UNKNOWN, rig.RETIRED, "x" * 64, "", "kiosk-001/q")
#: What each unmutated seed must give at NOW on its own topic (from how it was made).
EXPECTED = {
    "query": "answer",
    "resend": "answer",
    "stale": "hint",
    "expired": "refused:expired",
    "future": "refused:future",
    "mismatch": "refused:terminal_mismatch",
    "unknown": "refused:unknown_terminal",
    "retired": "answer",
    "lifetime": "refused:lifetime",
}
BOX = rig.box_for(rig.QID)
OTHER_BOX = rig.box_for(bytes(16))
STATES = (b"UTO", b"D", b"ABCD", b"", b"uto", b"\xff\xfe")
NUMBERS = (b"L898902C3", b"1", b"A" * 22, b"A" * 23, b"", b"L898<902", b"\x00X")


def _mutate(fdp: atheris.FuzzedDataProvider, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 8)
        pos = fdp.ConsumeIntInRange(0, max(0, len(b) - 1))
        if op == 0 and b:
            b[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        elif op == 1 and b:
            b[pos] = fdp.ConsumeIntInRange(0, 255)
        elif op == 2:
            b[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))
        elif op == 3:
            del b[pos : pos + fdp.ConsumeIntInRange(1, 64)]
        elif op == 4:
            del b[fdp.ConsumeIntInRange(0, len(b)) :]
        elif op == 5:
            b += fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 256))
        elif op == 6 and len(b) >= 4:
            b[2:4] = fdp.ConsumeIntInRange(0, 0xFFFF).to_bytes(2, "big")
        elif op == 7 and len(b) >= 2:
            b[fdp.ConsumeIntInRange(0, 1)] = fdp.ConsumeIntInRange(0, 255)
        elif op == 8 and len(b) >= 4:
            other = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)].session.ticket
            tlen = int.from_bytes(b[2:4], "big")
            b[2 : 4 + tlen] = len(other).to_bytes(2, "big") + other
    return bytes(b)


def _body(fdp: atheris.FuzzedDataProvider, qid: bytes) -> bytes:
    shape = fdp.ConsumeIntInRange(0, 4)
    if shape == 0:  # a document key, parts fuzzed, zero-padded as the kiosk pads it
        parts = [
            STATES[fdp.ConsumeIntInRange(0, len(STATES) - 1)]
            if fdp.ConsumeBool()
            else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4)),
            fdp.ConsumeBytes(1),
            NUMBERS[fdp.ConsumeIntInRange(0, len(NUMBERS) - 1)]
            if fdp.ConsumeBool()
            else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)),
        ]
        del parts[fdp.ConsumeIntInRange(3, 4) :]  # sometimes a part too few
        raw = b"|".join(parts) + b"|" * fdp.ConsumeIntInRange(0, 1)
        return raw + bytes(max(0, sess.QUERY_KEY_SIZE - len(raw)))
    if shape == 1:  # the pending box of this query id (valid if qid is QID)
        return BOX if qid == rig.QID else OTHER_BOX
    if shape == 2:
        return _mutate(fdp, BOX)
    if shape == 3:
        return sess.pad_document_key(rig.DK)
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 128))


def _timestamp(fdp: atheris.FuzzedDataProvider) -> int:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return int(rig.NOW * 1000) + fdp.ConsumeIntInRange(-400_000, 400_000)
    if choice == 1:
        return (0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1)[fdp.ConsumeIntInRange(0, 5)]
    if choice == 2:
        return fdp.ConsumeIntInRange(0, 2**64 - 1)
    return int(rig.NOW * 1000) + fdp.ConsumeIntInRange(-(10**12), 10**12)


def _resealed(fdp: atheris.FuzzedDataProvider, seed: rig.Seed) -> bytes:
    qid = rig.QID if fdp.ConsumeBool() else fdp.ConsumeBytes(16).ljust(16, b"\0")
    kind = (sess.TYPE_QUERY, sess.TYPE_RESEND, fdp.ConsumeIntInRange(0, 255))[
        fdp.ConsumeIntInRange(0, 2)
    ]
    pt = rig.query_plaintext(qid, _timestamp(fdp), _body(fdp, qid))
    if fdp.ConsumeIntInRange(0, 7) == 0:
        pt = pt[: fdp.ConsumeIntInRange(0, len(pt))]
    aad = None if fdp.ConsumeIntInRange(0, 7) else TERMINALS[fdp.ConsumeIntInRange(0, 3)]
    nonce = fdp.ConsumeBytes(12).ljust(12, b"\0")
    return rig.reseal(seed.session, pt, kind=kind, nonce=nonce, aad_terminal=aad)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    terminal = seed.terminal
    if fdp.ConsumeIntInRange(0, 15) == 0:
        terminal = TERMINALS[fdp.ConsumeIntInRange(0, len(TERMINALS) - 1)]
    now = rig.NOW
    if fdp.ConsumeIntInRange(0, 7) == 0:
        now += fdp.ConsumeIntInRange(-3 * 86400, 3 * 86400)
    rotated = fdp.ConsumeIntInRange(0, 15) == 0
    strategy = fdp.ConsumeIntInRange(0, 3)
    if strategy == 0:
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1024))
    elif strategy == 1:
        payload = seed.payload
    elif strategy == 2:
        payload = _mutate(fdp, seed.payload)
    else:
        payload = _resealed(fdp, seed)
    REG.guard = rig.RefusalGuard(refusal_burst=50, refusal_rate=5.0, clock=lambda: 0.0)
    if rotated:
        REG.pinned[rig.RETIRED] = [rig.ROTATED.public_key()]
    try:
        for _ in range(fdp.ConsumeIntInRange(1, 2)):  # again: the guard's negative cache
            got = rig.handle(REG, terminal, payload, now)
    finally:
        REG.pinned[rig.RETIRED] = [rig.IDENTITY[rig.RETIRED].public_key()]
    if strategy == 1 and terminal == seed.terminal and now == rig.NOW and not rotated:
        assert got == EXPECTED[seed.name], (seed.name, got)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
