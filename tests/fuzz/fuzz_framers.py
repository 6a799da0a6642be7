"""Coverage-guided fuzz harness (atheris/libFuzzer) over every scanner framer.

Run directly with libFuzzer flags, e.g. ``python tests/fuzz/fuzz_framers.py -max_total_time=60``,
or all harnesses through ``python -m tests.fuzz.run --seconds N`` (``make fuzz``).

Each input picks a framer (lines, stx, rte, json, auto), cuts the rest into chunks at
fuzzed points, some of them a valid frame of a fuzzed framing or a long run of one byte
(past the largest framer's bound), and feeds them with
fuzzed time gaps (so idle timeouts fire too). Invariants on every step: no exception
escapes, the buffer never exceeds the framer's constant bound, counters never go down,
every document has 1-3 lines and a JSON-serialisable MRZ object, every kept error is a
FramingError whose message names the framing and a byte offset. A hang is caught by
libFuzzer's ``-timeout``.
"""

from __future__ import annotations

import json
import re
import sys

import atheris

with atheris.instrument_imports():
    from firmware.errors import FramingError
    from firmware.scanner import (
        CANDIDATES,
        framing_json,
        framing_lines,
        framing_rte,
        framing_stx,
        make_framer,
    )

NAMES = ("lines", "stx", "rte", "json", "auto")
MRZ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
ENCODERS = (
    framing_lines.encode,
    framing_stx.encode,
    lambda ls: framing_stx.encode(ls, b"\x1c", b"\x1d"),
    framing_rte.encode,
    framing_json.encode,
)
#: The largest bound of a concrete framer, and past it auto's probe (2048 bytes) too.
MAX_BUFFER = max(c.max_buffer for c in CANDIDATES.values())
ERROR = re.compile(r"^(lines|stx|rte|json): frame at byte \d+: ")


def _frame(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A well-formed frame of some framing, with MRZ-ish lines (sometimes the specimen)."""
    if fdp.ConsumeBool():
        lines = list(TD3)
    else:
        width = (30, 36, 44)[fdp.ConsumeIntInRange(0, 2)]
        lines = [
            "".join(MRZ[b % len(MRZ)] for b in fdp.ConsumeBytes(width)).ljust(width, "<")
            for _ in range(3 if width == 30 else 2)
        ]
    return ENCODERS[fdp.ConsumeIntInRange(0, len(ENCODERS) - 1)](lines)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    framer = make_framer(
        NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)],
        idle_timeout=0.5,
        mrz_mode=("strict", "tolerant", "repair")[fdp.ConsumeIntInRange(0, 2)],
    )
    now = 0.0
    last = framer.counters()
    for _ in range(fdp.ConsumeIntInRange(1, 24)):
        if fdp.remaining_bytes() == 0:
            break
        now += fdp.ConsumeIntInRange(0, 1000) / 1000.0
        action = fdp.ConsumeIntInRange(0, 5)
        if action == 0:
            docs = framer.poll(now)
        elif action == 1:
            docs = framer.feed(_frame(fdp), now)
        elif action == 2:
            docs = framer.flush()
        elif action == 3:
            # a long run of one byte: past every framer's bound at the cost of 3 input bytes
            run = fdp.ConsumeBytes(1) * fdp.ConsumeIntInRange(0, MAX_BUFFER + 64)
            docs = framer.feed(run, now)
        else:
            docs = framer.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)), now)
        assert 0 <= framer.buffered <= framer.max_buffer
        counters = framer.counters()
        assert all(counters[k] >= last[k] for k in counters), (last, counters)
        last = counters
        for doc in docs:
            assert 1 <= len(doc.lines) <= 3 or framer.name in ("stx", "json", "rte", "auto")
            assert all(isinstance(s, str) for s in doc.lines)
            json.dumps(doc.to_json())
        for err in framer.take_errors():
            assert isinstance(err, FramingError) and ERROR.match(str(err)), str(err)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
