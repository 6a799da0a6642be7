"""Coverage-guided fuzz harness (atheris/libFuzzer) for :func:`firmware.mrz.parse`.

Run directly with libFuzzer flags, e.g. ``python tests/fuzz/fuzz_mrz.py -max_total_time=60``,
or all harnesses through ``python -m tests.fuzz.run --seconds N`` (``make fuzz``).

Invariants checked on every input: ``parse`` raises nothing for a list of strings, raises
only :class:`MrzError` for anything else, returns a JSON-serialisable contract object, and
``valid`` agrees with ``errors``. A hang is caught by libFuzzer's ``-timeout``.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from firmware.errors import MrzError
    from firmware.mrz import JSON_KEYS, parse

MODES = ("strict", "tolerant", "repair")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"
BASES = (
    (
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ),
    (
        "I<UTOD23145890<7349<<<<<<<<<<<",
        "3407127M9507122UTO<<<<<<<<<<<2",
        "STEVENSON<<PETER<JOHN<<<<<<<<<",
    ),
    ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"),
    (
        "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
    ),
    ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX4009078F9612109<<<<<<<<"),
)


def _lines(fdp: atheris.FuzzedDataProvider) -> object:
    shape = fdp.ConsumeIntInRange(0, 4)
    if shape == 0:  # anything at all
        return [fdp.ConsumeUnicodeNoSurrogates(60) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if shape == 1:  # the right shape, characters from the MRZ set
        width = (30, 36, 44)[fdp.ConsumeIntInRange(0, 2)]
        count = 3 if width == 30 else 2
        return [
            "".join(ALPHABET[b % len(ALPHABET)] for b in fdp.ConsumeBytes(width)).ljust(width, "<")
            for _ in range(count)
        ]
    if shape == 2:  # a specimen with a few substitutions (reaches checks and repair)
        lines = [list(x) for x in BASES[fdp.ConsumeIntInRange(0, len(BASES) - 1)]]
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            row = lines[fdp.ConsumeIntInRange(0, len(lines) - 1)]
            row[fdp.ConsumeIntInRange(0, len(row) - 1)] = chr(fdp.ConsumeIntInRange(32, 0x17F))
        return ["".join(row) for row in lines]
    if shape == 3:  # transport noise around a specimen
        base = BASES[fdp.ConsumeIntInRange(0, len(BASES) - 1)]
        noise = fdp.ConsumeUnicodeNoSurrogates(4)
        return [noise + line.lower() + noise for line in base]
    return (None, b"P<UTO", "P<UTO", 42, [b"x"], [1])[fdp.ConsumeIntInRange(0, 5)]


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = MODES[fdp.ConsumeIntInRange(0, 2)]
    lines = _lines(fdp)
    if not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
        try:
            parse(lines, mode)  # type: ignore[arg-type]
        except MrzError:
            return
        raise AssertionError("non-string input was accepted")
    result = parse(lines, mode)
    obj = result.to_json()
    assert list(obj)[: len(JSON_KEYS)] == list(JSON_KEYS)
    json.dumps(obj)
    assert result.valid == (not result.errors)
    assert all(err.kind in ("check", "semantic", "structure", "charset") for err in result.errors)
    if result.repaired:
        assert mode == "repair" and result.valid


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
