"""Regression tests for what the fuzz harnesses found, each with the crashing input.

``tests/fuzz/crashes/<harness>-<what>`` holds the input libFuzzer wrote (the harness name
is the part before the first dash); each is replayed through its harness, which must now
run it clean. The defect itself is also pinned without the fuzzer, from product code.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.protocol import session as sess
from tests.fuzz import protocol_rig as rig
from tests.support.require import need

HERE = Path(__file__).resolve().parent
CRASHES = sorted((HERE / "crashes").iterdir())


@pytest.mark.parametrize("crash", CRASHES, ids=lambda p: p.name)
def test_crashing_input_runs_clean_through_its_harness(crash):
    if importlib.util.find_spec("atheris") is None:
        need("fuzz", "atheris is not installed (pip install -e '.[dev]' on x86_64)")
    harness = HERE / f"fuzz_{crash.name.split('-')[0]}.py"
    assert harness.exists(), harness
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run(
        [sys.executable, str(harness), str(crash)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Running: {crash}" in proc.stderr and "Executed" in proc.stderr


def test_time_hint_for_a_timestamp_near_2_pow_64_ms_is_sealed_and_verifies():
    """envelope-hint-u64-overflow: an authentic query whose u64 timestamp is 2**64-1 ms.
    The regional refused it (window) and then raised ``struct.error`` sealing the hint:
    the timestamp went to float seconds and back to 2**64 ms. Now the hint is sealed, and
    the terminal verifies it against the pinned regional key."""
    regional = rig.Regional()
    ts = rig.terminal_session(seed=1)
    for ts_ms in (2**64 - 1, 2**64 - 512, 2**63):
        nonce = ts_ms.to_bytes(8, "big")[-4:] + bytes(8)
        pt = rig.query_plaintext(rig.QID, ts_ms, sess.pad_document_key(rig.DK))
        payload = rig.reseal(ts, pt, nonce=nonce)
        with pytest.raises(sess.OutOfWindow) as exc:
            regional.sessions.open_query(rig.TID, payload, rig.NOW)
        hint_payload = regional.sessions.seal_time_hint(exc.value.stale, rig.NOW, rig.SIGN)
        ts._pending[nonce] = rig.QID  # as if the terminal had sealed this query itself
        got_nonce, hint = ts.open_reply(hint_payload, rig.SIGN.public_key())
        assert got_nonce == nonce and isinstance(hint, sess.TimeHint)
        assert hint.query_id == rig.QID and hint.regional_time == rig.NOW
        assert hint.query_time == pytest.approx(ts_ms / 1000)
