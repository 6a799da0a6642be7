"""The audit benchmark's own measurement, at a small size: a start finds the head and the
one pending query whose verdict is in the log, within the time and memory bounds."""

from __future__ import annotations

from host_tools.bench.audit import START_MB, run


def test_audit_bench_small_log_starts_within_bounds():
    res = run(20_000)  # ~6 MB, two segments
    s = res["start"]
    assert res["segments"] >= 2 and res["verify"]["ok"] and res["verify"]["entries"] >= 20_000
    assert s["verdicts_found"] == 1 and s["head_seq"] >= 20_000
    assert max(s["rss_added_mb"], s["peak_added_mb"]) < START_MB  # measured ~0.1 MB
    assert res["ok"]
