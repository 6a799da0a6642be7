"""``fieldterm bench regional`` as CI runs it: the real broker, regional process and clients.

The benchmark's own accounting is checked against evidence it does not compute: the
regional's audit trail and health file, read here, and the number of listed documents
its query mix must contain (1 in ``hit_every``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np

from host_tools.bench.loadgen import LoadResult, Tally, WindowedLoad, pooled
from host_tools.bench.regional_report import format_text

SYSTEMS = ["echo_v5", "echo_min", "sealed"]
FIGURES = ("qps", "p50_us", "p99_us", "loaded_p50_us", "loaded_p99_us", "serial_qps")
RATIOS = ("qps", "serial_qps", "p50", "p99", "loaded_p50", "loaded_p99")


def bench(work: Path, *args: str) -> tuple[int, dict, str]:
    cmd = [sys.executable, "-m", "firmware.cli", "bench", "regional", "--quick", "--json"]
    r = subprocess.run(
        [*cmd, "--workdir", str(work), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, (r.stdout[-2000:], r.stderr[-3000:])
    return r.returncode, json.loads(lines[0]), r.stderr


def audit_outcomes(work: Path) -> dict[str, int]:
    """Rows of the regional's audit trail by outcome, read straight from its database."""
    with closing(sqlite3.connect(work / "region" / "broker" / "regional-audit.sqlite")) as db:
        return dict(db.execute("SELECT outcome, COUNT(*) FROM audit GROUP BY outcome"))


def regional_health(work: Path) -> dict:
    return json.loads((work / "region" / "regional-0.health.json").read_text())


def test_quick_run_accounts_for_every_query(tmp_path):
    code, res, err = bench(tmp_path)
    assert code == 0, err[-3000:]
    assert res["valid"] is True and res["failures"] == []
    assert res["passes"] == 2
    # interleaved: every system once per pass, in the same order
    assert [p["system"] for p in res["per_pass"]] == SYSTEMS * 2
    assert [p["pass"] for p in res["per_pass"]] == [1, 1, 1, 2, 2, 2]
    for name in SYSTEMS:
        figs = res["systems"][name]
        for key in FIGURES:
            assert figs[key] > 0, (name, key)
        assert figs["p99_us"] >= figs["p50_us"] and figs["loaded_p99_us"] >= figs["loaded_p50_us"]
        assert figs["sent"] == figs["answered"] > 0, name
    for base in ("echo_v5", "echo_min"):
        r = res["ratios"][f"sealed_over_{base}"]
        assert set(RATIOS) <= set(r) and all(r[k] > 0 for k in RATIOS)
        assert len(r["qps_by_pass"]) == 2
        assert r["qps"] == res["systems"]["sealed"]["qps"] / res["systems"][base]["qps"]
    assert res["lost"] == 0 and res["wrong"] == 0 and res["refused"] == 0

    # the regional's own records, not the benchmark's
    rows = audit_outcomes(tmp_path)
    health = regional_health(tmp_path)
    sent = res["sent"]
    assert res["answered"] == sent
    assert rows.get("NO_MATCH", 0) + rows.get("POSSIBLE_MATCH", 0) == sent
    assert not [k for k in rows if k.startswith("REFUSED")]
    assert res["audited"] == sent and health["answered"] == sent and health["audited"] == sent
    assert health["counts"].get("refused", 0) == 0
    # query n is for a listed document when n % hit_every == hit_every - 1
    assert rows.get("POSSIBLE_MATCH", 0) == sent // res["hit_every"] > 0
    assert sum(p["audited"] for p in res["per_pass"] if p["system"] == "sealed") <= sent


def test_refused_queries_fail_the_run(tmp_path):
    """A real fault: one terminal seals to a key that is not the regional's for a pass."""
    code, res, err = bench(tmp_path, "--systems", "sealed", "--passes", "1", "--fault", "wrong-key")
    assert code == 1
    assert res["valid"] is False and res["ratios"] is None
    rows = audit_outcomes(tmp_path)
    refused_rows = sum(n for k, n in rows.items() if k.startswith("REFUSED:"))
    health = regional_health(tmp_path)
    assert refused_rows > 0
    assert res["refused"] == refused_rows == health["counts"]["refused"]
    assert sum(health["refusals"].values()) == refused_rows
    # each refused query is one the terminal never heard back about
    assert res["lost"] == refused_rows and res["timeouts"] == refused_rows
    # what was answered is still all audited
    answered_rows = rows.get("NO_MATCH", 0) + rows.get("POSSIBLE_MATCH", 0)
    assert res["audited"] == res["answered"] == answered_rows == res["sent"] - refused_rows
    assert [p["fault"] for p in res["per_pass"]] == ["wrong-key"]
    assert "FAILED" in err and "refused" in err and "lost" in err


def test_text_summary_withholds_ratios_of_an_invalid_run():
    res = {
        "records": 10, "terminals": 1, "window": 1, "passes": 1, "duration_s": 1.0,
        "serial_queries": 1, "order": ["echo_v5", "sealed"], "valid": False,
        "failures": ["sealed: 3 of 9 queries got no answer (lost)"], "ratios": None,
        "systems": {
            n: dict.fromkeys(FIGURES, 100.0) for n in ("echo_v5", "sealed")
        },
        "lost": 3, "wrong": 0, "refused": 3, "audited": 6, "answered": 6,
        "per_pass": [
            {"pass": 1, "system": "echo_v5", "qps": 100.0, "lost": 0, "wrong": 0},
            {"pass": 1, "system": "sealed", "qps": 100.0, "lost": 3, "wrong": 0, "refused": 3},
        ],
    }  # fmt: skip
    text = format_text(res)
    assert "INVALID" in text and "sealed_over" not in text
    assert "FAILED: sealed: 3 of 9 queries got no answer (lost)" in text
    assert "sealed 100 (lost 3, wrong 0, refused 3)" in text


def test_windowed_load_keeps_the_window_and_counts():
    """A synchronous fake transport: answers immediately, records the peak in flight."""
    in_flight = [0, 0]

    def submit(done):
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        in_flight[0] -= 1
        done(True)

    res = WindowedLoad([submit, submit], window=3, total=50).run()
    assert res.completed == 50 and res.errors == 0 and res.lost == 0
    assert res.latencies_us.size == 50


def test_windowed_load_reports_lost_queries():
    pending = []
    res = WindowedLoad([pending.append], window=4, total=10, grace=0.2, duration=0.1).run()
    assert res.completed == 0 and res.lost == 4 and len(pending) == 4


def test_tally_counts_what_no_run_answered():
    tally = Tally()
    pending = []
    sub = tally.counted(pending.append)
    for _ in range(5):
        sub(lambda ok: None)
    pending[0](True)
    pending[1](False)
    assert tally.snapshot() == {"sent": 5, "answered": 2, "wrong": 1}
    assert tally.lost == 3


def test_pooled_sums_counts_and_time_and_joins_latencies():
    a = LoadResult(10, 1, 0, 2.0, np.array([1.0, 2.0]))
    b = LoadResult(30, 0, 2, 2.0, np.array([3.0]))
    p = pooled([a, b])
    assert (p.completed, p.errors, p.lost, p.seconds) == (40, 1, 2, 4.0)
    assert p.qps == 10.0 and list(p.latencies_us) == [1.0, 2.0, 3.0]
