"""``fieldterm bench fleet``'s verdict over the runs it makes (the runs themselves are
``fieldterm sim fleet``, tested end to end in test_fleet_run.py)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from host_tools.bench import fleet


def _report(label: str, **kw: Any) -> dict[str, Any]:
    base = {
        "label": label, "terminals": 10, "sites": 0, "regionals": 1, "scans": 100,
        "answered": 100, "lost": 0, "wrong": 0, "p50_ms": 40.0, "p99_ms": 900.0,
        "max_ms": 3000.0, "p99_outside_ms": 80.0, "recovery_s": 12.0,
        "broker_rss_mb": 20.0, "sim_rss_mb": 70.0, "answered_per_s": 10.0,
    }  # fmt: skip
    return {**base, **kw}


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    fleet.add_arguments(p)
    return p.parse_args(list(argv))


def test_runs_the_issue_sizes_and_fails_only_on_lost_or_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []
    results = {
        "direct": _report("direct", p99_outside_ms=300.0),  # misses the latency goal
        "bridged": _report("bridged", lost=2),  # lost scans: the benchmark fails
        "k=1": _report("k=1"), "k=2": _report("k=2", regionals=2, answered_per_s=15.0),
        "k=4": _report("k=4", regionals=4, wrong=1),
    }  # fmt: skip

    def sim(label: str, *argv: str) -> dict[str, Any]:
        calls.append((label, argv))
        return results[label]

    monkeypatch.setattr(fleet, "_sim", sim)
    out = fleet.run(_args())
    labels = [c[0] for c in calls]
    assert labels == ["direct", "bridged", "k=1", "k=2", "k=4"]
    direct, bridged = calls[0][1], calls[1][1]
    assert direct[direct.index("--terminals") + 1] == "10000"
    assert bridged[bridged.index("--sites") + 1] == "50"
    assert direct[direct.index("--rate") + 1] == "1000.0"
    assert direct[direct.index("--fault") + 1] == "broker@20"  # one restart, a third in
    assert "--fault" not in calls[2][1]
    assert out["failures"] == ["bridged: lost 2, wrong 0", "k=4: lost 0, wrong 1"]
    assert out["goals"]["direct_p99_under_250ms"] is False
    assert out["goals"]["bridged_recovery_under_60s"] is True
    assert out["scaling_ratios"] == {"k1_vs_k1_qps": 1.0, "k2_vs_k1_qps": 1.5, "k4_vs_k1_qps": 1.0}
    text = fleet.format_text(out)
    assert "goal direct_p99_under_250ms: MISSED" in text and "k=4" in text


def test_only_and_quick_choose_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(fleet, "_sim", lambda label, *a: calls.append(a) or _report(label))
    out = fleet.run(_args("--quick", "--only", "direct"))
    assert len(calls) == 1 and calls[0][calls[0].index("--terminals") + 1] == "300"
    assert out["failures"] == []
