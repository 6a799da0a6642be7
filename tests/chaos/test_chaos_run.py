"""``fieldterm chaos``: its checks catch broken promises, and a short real run holds them."""

from __future__ import annotations

import json
import subprocess
import sys

from host_tools.chaos import netns
from host_tools.chaos.run import check
from tests.support.require import need

EXPECTED = {"aa" * 8: "POSSIBLE_MATCH", "bb" * 8: "NO_MATCH"}
DKH = {"q1": "aa" * 8, "q2": "bb" * 8}


def _doc(seq: int) -> dict:
    return {"event": "document", "valid": True, "seq": seq, "qid": f"q{seq}"}


def _verdict(seq: int, outcome: str) -> dict:
    return {"event": "verdict", "seq": seq, "qid": f"q{seq}", "outcome": outcome}


def _state(seq: int, after: str, cause: str, before: str = "querying") -> dict:
    return {
        "event": "state", "seq": seq, "qid": f"q{seq}", "before": before, "after": after,
        "cause": cause,
    }  # fmt: skip


def test_a_run_that_kept_every_promise_passes() -> None:
    events = [
        _doc(1), _verdict(1, "POSSIBLE_MATCH"), _state(1, "possible_match", "verdict"),
        _doc(2), _verdict(2, "NO_MATCH"), _state(2, "clear", "verdict"),
        _state(2, "clear", "late verdict", "unknown"),  # a late NO_MATCH after UNKNOWN
        # a late hit for scan 1 noted while scan 2's CLEAR is on screen: not a CLEAR for 1
        _state(1, "clear", "late verdict", "clear"),
    ]  # fmt: skip
    c = check(events, EXPECTED, DKH)
    assert c.ok and c.accepted == c.answered == 2 and c.unverified == 0


def test_an_accepted_scan_with_no_verdict_is_lost_even_across_a_restart() -> None:
    events = [_doc(1), {"event": "start", "pending": [1, 7]}, _verdict(1, "POSSIBLE_MATCH")]
    c = check(events, EXPECTED, DKH)
    assert not c.ok and c.lost == [7]


def test_a_verdict_against_the_list_is_wrong() -> None:
    c = check([_doc(1), _verdict(1, "NO_MATCH")], EXPECTED, DKH)
    assert not c.ok and c.wrong == [{"seq": 1, "outcome": "NO_MATCH", "expected": "POSSIBLE_MATCH"}]


def test_clear_from_a_timeout_or_for_a_hit_is_caught() -> None:
    timeout = check(
        [_doc(2), _state(2, "clear", "timeout"), _verdict(2, "NO_MATCH")], EXPECTED, DKH
    )
    assert not timeout.ok and timeout.clear_without_no_match[0]["cause"] == "timeout"
    hit = check(
        [_doc(1), _verdict(1, "POSSIBLE_MATCH"), _state(1, "clear", "verdict")], EXPECTED, DKH
    )
    assert not hit.ok and len(hit.clear_without_no_match) == 1


def test_a_listed_document_answered_not_listed_offline_is_caught() -> None:
    offline = {"event": "offline", "seq": 1, "qid": "q1", "outcome": "NOT_LISTED"}
    c = check([_doc(1), offline, _verdict(1, "POSSIBLE_MATCH")], EXPECTED, DKH)
    assert not c.ok and c.offline_missed == [1]


def test_a_verdict_without_an_audit_row_is_unverified_not_passed_as_right() -> None:
    c = check([_doc(3), _verdict(3, "NO_MATCH")], EXPECTED, DKH)
    assert c.unverified == 1 and not c.wrong


def test_a_short_real_run_keeps_every_promise_under_three_faults() -> None:
    why = netns.available()
    if why:
        need("root", f"the partition scenario needs network namespaces: {why}")
    argv = [
        sys.executable, "-m", "firmware.cli", "chaos", "--json", "--seed", "5",
        "--scenario", "agent-kill", "--scenario", "broker-kill", "--scenario", "partition",
        "--partition-s", "8", "--repeat", "1", "--scans", "4",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ok"] is True and res["seed"] == 5
    for name in ("agent-kill", "broker-kill", "partition"):
        r = res["scenarios"][name]
        assert r["accepted"] > 0 and r["answered"] == r["accepted"], (name, r)
        assert r["lost"] == r["wrong"] == r["clear_without_no_match"] == r["offline_missed"] == 0
        assert r["unverified"] == 0, (name, r)
    notes = {n: [x for run in r["faults"] for x in run] for n, r in res["scenarios"].items()}
    assert "agent SIGKILLed" in notes["agent-kill"] and "agent restarted" in notes["agent-kill"]
    assert "broker SIGKILLed" in notes["broker-kill"]
    assert "partition healed" in notes["partition"]
    assert res["link"]["up_dropped"] > 0  # the partition dropped the kiosk's real packets
