"""Regenerate vectors/lane_v2.json (only when the frame format changes on purpose):

.venv/bin/python -m tests.annunciator.make_vectors
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from firmware.lane import frames

OUT = Path(__file__).with_name("vectors") / "lane_v2.json"


def _iv(n: int) -> bytes:
    return hashlib.sha256(b"lane vector iv %d" % n).digest()[:16]


def build() -> dict:
    site_key = hashlib.sha256(b"fieldterm lane vector site key").digest()
    keys = frames.SiteKeys.derive(site_key, 7)
    cases = []
    lanes = [
        ("kiosk-002", frames.IDLE, 0),
        ("kiosk-002", frames.CALL, 0x1A2B3C4D),
        ("kiosk-002", frames.ACKED, 0x1A2B3C4D),
        ("kiosk-001", frames.OUT_OF_SERVICE, 0),
    ]
    for i, (sender, state, call) in enumerate(lanes):
        counter = 1_764_000_000_000 + i
        frame = frames.seal_lane(keys, counter, sender, state, call, iv=_iv(i))
        cases.append(
            {"kind": "lane", "counter": counter, "sender": sender, "state": state, "call": call,
             "iv": _iv(i).hex(), "frame": frame.hex()}
        )  # fmt: skip
    for j, calls in enumerate([(), (0x1A2B3C4D,), (1, 2, 3, 4, 5, 6, 0xFFFFFFFF)]):
        counter = (0xCAFEF0 << 32) | (j + 1)  # a panel: epoch u24, seq u32
        frame = frames.seal_ack(keys, counter, "panel-1", calls, iv=_iv(10 + j))
        cases.append(
            {"kind": "ack", "counter": counter, "sender": "panel-1", "calls": list(calls),
             "iv": _iv(10 + j).hex(), "frame": frame.hex()}
        )  # fmt: skip
    return {
        "site_key": site_key.hex(),
        "key_id": keys.id,
        "k_enc": keys.enc.hex(),
        "k_mac": keys.mac.hex(),
        "frame_len": frames.FRAME_LEN,
        "cases": cases,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
