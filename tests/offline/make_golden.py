"""Regenerate the golden vectors in tests/offline/golden (run from the repository root):

    .venv/bin/python -m tests.offline.make_golden

For each case, a filter file built by the reference C code (through our writer) and a
JSON file: every member key, random non-member keys, and for each the answer ("1"/"0")
of the C library's ``binary_fuse{8,16}_contain`` on the populated C filter of the key's
shard (its top shard-bits bits). The
kiosk's own lookup (firmware.offline.fusefile) must give exactly these answers.
A format change edits these files on purpose.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from host_tools.offline import fusebuild

GOLDEN = Path(__file__).with_name("golden")
KEY_ID = bytes.fromhex("0123456789abcdef")
#: (name, fingerprint bits, member count, random seed, shard bits)
CASES = (
    ("fuse8-empty", 8, 0, 1, 0),
    ("fuse8-one", 8, 1, 2, 0),
    ("fuse8-3000", 8, 3000, 3, 0),
    ("fuse16-3000", 16, 3000, 4, 0),
    ("fuse8-20000", 8, 20000, 5, 0),
    ("fuse8-20000-s3", 8, 20000, 6, 3),
    ("fuse16-5000-s2", 16, 5000, 7, 2),
)
NON_MEMBERS = 4000


def make_case(name: str, bits: int, n: int, seed: int, shard_bits: int) -> None:
    rng = random.Random(seed)
    members = sorted({rng.getrandbits(64) for _ in range(n)})
    while len(members) < n:  # pragma: no cover - a 64-bit collision
        members = sorted(set(members) | {rng.getrandbits(64)})
    member_set = set(members)
    others: list[int] = []
    while len(others) < NON_MEMBERS:
        k = rng.getrandbits(64)
        if k not in member_set:
            others.append(k)
    keys = np.array(members, dtype=np.uint64)
    with fusebuild.c_filters(keys, bits, shard_bits=shard_bits) as f:
        data = f.file_bytes(KEY_ID)
        member_answers = "".join("1" if f.contains(k) else "0" for k in members)
        other_answers = "".join("1" if f.contains(k) else "0" for k in others)
    (GOLDEN / f"{name}.ftol").write_bytes(data)
    doc = {
        "filter": f"{name}.ftol",
        "fingerprint_bits": bits,
        "shard_bits": shard_bits,
        "key_id": KEY_ID.hex(),
        "members": [f"{k:016x}" for k in members],
        "member_answers": member_answers,
        "others": [f"{k:016x}" for k in others],
        "other_answers": other_answers,
    }
    (GOLDEN / f"{name}.json").write_text(json.dumps(doc, indent=0) + "\n")
    fp = other_answers.count("1")
    print(f"{name}: {len(data)} bytes, {n} members, {fp} of {len(others)} others answer yes")


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for case in CASES:
        make_case(*case)


if __name__ == "__main__":
    main()
