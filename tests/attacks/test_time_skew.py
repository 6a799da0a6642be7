"""A kiosk whose clock is wrong still gets correct answers, one round trip later.

Each kiosk here is a real ``fieldterm query`` process whose wall clock libfaketime shifts
(-30 days, -1 day, +10 minutes, +1 year), talking to a real Mosquitto from the generated
mTLS config and a real regional process. Before this, TLS already failed at -30 days
(the broker certificate "not yet valid" on the kiosk's clock) and every other skew beyond
the 120 s window got no answer at all. Now:

- TLS checks the chain but leaves the certificate times to authenticated time;
- the regional answers each authentic out-of-window query with a signed time hint;
- the kiosk adopts the offset for protocol time and reseals the query once.

Expected verdicts come from ``sltd generate``'s listed/unlisted samples (independent of
the code under test). "One extra round trip" is read from the regional's own audit trail:
per query id, at most one ``REFUSED:window`` and then its answer. The attack: the broker
(or anyone who recorded traffic) replays queries and hints; replays are still refused.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.regional.conftest import wait_for
from tests.support.faketime import faketime_env, libfaketime
from tests.support.localregion import FIELDTERM, TestRegion

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TID = "kiosk-001"
AGENT = "kiosk-003"  # the full agent process, its clock 30 days behind
DAY = 86400.0
OFFSETS = {"-30d": -30 * DAY, "-1d": -DAY, "+10min": 600.0, "+1y": 365 * DAY}
#: Figures for the report (printed at the end of the module with -s).
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    libfaketime()  # need("faketime") before any process starts
    with TestRegion(
        tmp_path_factory.mktemp("time-skew"), terminals=(TID, "kiosk-002", AGENT), records=2000,
        seed=13, sample_size=6,
    ) as r:  # fmt: skip
        r.provision().generate_list()
        r.start_broker()
        r.start_regional()
        yield r
    if FIGURES:
        print("\ntime skew figures:", json.dumps(FIGURES, indent=1))


def audit_rows(region: TestRegion) -> list[tuple[str, bytes | None, str]]:
    doc = tomllib.loads(region.regional_toml.read_text())
    path = Path(doc["regional"].get("audit_db", "regional-audit.sqlite"))
    if not path.is_absolute():
        path = region.regional_toml.parent / path
    with sqlite3.connect(path) as db:
        return db.execute("SELECT terminal, query_id, outcome FROM audit ORDER BY rowid").fetchall()


def audit_answers(region: TestRegion, before: int, qids: set[bytes]) -> dict[bytes, list[str]]:
    """The audit rows after row ``before``, per query id, once every one of ``qids`` has
    its answer there (the regional's audit writer commits in batches)."""
    final = ("POSSIBLE_MATCH", "NO_MATCH", "ERROR")

    def rows() -> dict[bytes, list[str]] | None:
        per: dict[bytes, list[str]] = defaultdict(list)
        for _terminal, qid, outcome in audit_rows(region)[before:]:
            per[qid].append(outcome)
        return per if all(any(o in final for o in per.get(q, [])) for q in qids) else None

    return wait_for(rows, "the answers in the regional's audit")


def health(region: TestRegion) -> dict[str, Any]:
    return region.health(region.procs[0][1])


def run_query(region: TestRegion, tid: str, offset: float, docs: list[list[str]], tmp: Path):
    """``fieldterm query`` as kiosk ``tid`` with its wall clock ``offset`` s off."""
    src = tmp / f"docs-{tid}.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    r = subprocess.run(
        [FIELDTERM, "query", "--config", str(region.terminal_toml(tid)), "--mrz-jsonl", str(src)],
        env=faketime_env(offset, tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return r, rows


@pytest.mark.parametrize("name", list(OFFSETS))
def test_kiosk_with_wrong_clock_gets_correct_answers_within_one_extra_round_trip(
    region: TestRegion, tmp_path: Path, name: str
) -> None:
    offset = OFFSETS[name]
    listed, unlisted = region.listed[:2], region.unlisted[:2]
    before = len(audit_rows(region))
    hints_before = health(region).get("clock", {}).get("hints", 0)
    r, rows = run_query(region, TID, offset, [*listed, *unlisted], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # the kiosk process really ran with the shifted clock (libfaketime was in effect)
    assert "signed time hint: this clock is" in r.stderr, r.stderr[-2000:]
    assert [row["verdict"] for row in rows] == ["POSSIBLE MATCH"] * 2 + ["CLEAR"] * 2
    # the regional's audit: each query id refused for its time at most once, then answered
    qids = {bytes.fromhex(row["query_id"]) for row in rows}
    per_query = audit_answers(region, before, qids)
    assert set(per_query) == qids
    assert {t for t, _, _ in audit_rows(region)[before:]} == {TID}
    for outcomes in per_query.values():
        assert outcomes[-1] in ("POSSIBLE_MATCH", "NO_MATCH")
        assert outcomes[:-1] in ([], ["REFUSED:window"]), outcomes
    extra = sum(len(o) - 1 for o in per_query.values())
    assert extra >= 1  # at least the first query was told the time
    # the operator sees the skew, as the kiosk's clock had it
    h = wait_for(
        lambda: (x := health(region)).get("clock", {}).get("hints", 0) > hints_before and x,
        "the skew in the regional's health",
    )
    seen = h["clock"]["terminals"][TID]["skew_s"]
    assert seen == pytest.approx(offset, abs=30.0)
    FIGURES[name] = {
        "verdicts": [row["verdict"] for row in rows],
        "queries": len(rows),
        "time_hints": extra,
        "latency_ms": [row["latency_ms"] for row in rows],
        "skew_in_health_s": seen,
    }


def test_honest_kiosk_with_a_good_clock_gets_no_hint(region: TestRegion, tmp_path: Path):
    before = len(audit_rows(region))
    r, rows = run_query(region, "kiosk-002", 0.0, region.unlisted[:2], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [row["verdict"] for row in rows] == ["CLEAR", "CLEAR"]
    qids = {bytes.fromhex(row["query_id"]) for row in rows}
    assert sorted(audit_answers(region, before, qids).values()) == [["NO_MATCH"]] * 2
    assert "signed time hint" not in r.stderr
    FIGURES["0 (reference)"] = {"latency_ms": [row["latency_ms"] for row in rows]}


def test_reference_without_the_fix_tls_fails_at_minus_30_days(region: TestRegion, tmp_path):
    """Why the TLS part is needed: openssl's own client, with the kiosk's certificate and
    the same CA, under the same shifted clock, refuses the broker's certificate."""
    bundle = region.bundle(TID)
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{region.port}", "-verify_return_error",
         "-CAfile", str(bundle / "ca.crt"), "-cert", str(bundle / "client.crt"),
         "-key", str(bundle / "client.key")],
        env=faketime_env(-30 * DAY, tmp_path), input="", capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode != 0
    assert "certificate is not yet valid" in (r.stdout + r.stderr)


def test_agent_30_days_behind_answers_and_shows_the_clock_notice(region: TestRegion, tmp_path):
    """The real agent process (pty scanner, console display), its wall clock 30 days
    behind, as a Pi without an RTC after a month in a drawer: the first scan gets its real
    answer after one time hint, the officer sees the clock notice, and no restart."""
    agent = region.start_agent(
        AGENT, signals="mock", display="console", env=faketime_env(-30 * DAY, tmp_path)
    )
    before = len(audit_rows(region))
    mark = agent.events.mark()
    agent.scanner.send(region.listed[2])
    shown = agent.wait_event(
        lambda e: e["event"] == "state" and e["after"] not in ("reading", "querying", "idle"),
        "the answer on screen",
        mark,
    )
    assert shown["after"] == "possible_match"
    clock = agent.wait_event(lambda e: e["event"] == "clock", "the clock event", mark)
    assert clock["offset_s"] == pytest.approx(30 * DAY, abs=30.0) and clock["notice"]
    verdict = agent.wait_event(lambda e: e["event"] == "verdict", "the verdict", mark)
    assert verdict["outcome"] == "POSSIBLE_MATCH"
    first_latency = verdict.get("latency_s")
    qid = bytes.fromhex(verdict["qid"])
    assert audit_answers(region, before, {qid})[qid] == ["REFUSED:window", "POSSIBLE_MATCH"]
    # the officer acknowledges; the idle screen carries the clock notice
    mark = agent.events.mark()
    agent.signal(signal.SIGUSR1)
    agent.wait_event(lambda e: e["event"] == "state" and e["after"] == "idle", "idle", mark)
    wait_for(lambda: "Kiosk clock 720 h behind" in agent.logs(), "the clock notice on screen")
    # a second scan: no hint needed any more, the same process
    before = len(audit_rows(region))
    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[2])
    verdict = agent.wait_event(lambda e: e["event"] == "verdict", "the second verdict", mark)
    assert verdict["outcome"] == "NO_MATCH"
    qid = bytes.fromhex(verdict["qid"])
    assert audit_answers(region, before, {qid}) == {qid: ["NO_MATCH"]}
    FIGURES["agent -30d"] = {
        "first_latency_s": first_latency,
        "second_latency_s": verdict.get("latency_s"),
        "clock_offset_s": clock["offset_s"],
    }
