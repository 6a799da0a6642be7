"""`fieldterm bench offline --quick --json` as a subprocess: its figures meet issue 12's
bounds, and a damaged filter file makes it fail."""

from __future__ import annotations

import json
import subprocess
import sys

# issue 12's targets, independent of the benchmark's code
MAX_BITS_PER_RECORD = 9.1
MAX_FP_PCT = 0.45


def bench(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware.cli", "bench", "offline", "--quick", "--json", *extra],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_quick_run_meets_the_issue_bounds() -> None:
    p = bench()
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    for key in ("build", "hash_store", "bits_per_record", "false_positive_pct", "lookup",
                "rss", "delta", "ratios", "valid", "failures", "members_missed"):  # fmt: skip
        assert key in res, key
    assert res["benchmark"] == "offline" and res["records"] == 1_000_000
    assert res["valid"] is True and res["failures"] == []
    assert res["members_missed"] == 0 and res["members_probed"] > 0
    assert res["bits_per_record"] < MAX_BITS_PER_RECORD
    assert res["bits_per_record"] == round(res["build"]["bytes"] * 8 / res["records"], 3)
    assert res["false_positive_pct"] < MAX_FP_PCT and res["fp_probes"] >= 100_000
    lk = res["lookup"]
    assert lk["disagreements"] == 0 and lk["lookups"] > 0
    assert 0 < lk["c_cffi_p50_us"] <= lk["c_cffi_p99_us"]
    assert 0 < lk["python_mmap_p50_us"] <= lk["python_mmap_p99_us"]
    assert res["ratios"]["lookup_python_over_c_p50"] == lk["python_over_c_p50"]
    # mapping copies nothing: far below the ~1.1 MB a loaded copy adds
    assert res["rss"]["load_added_kb"] >= res["rss"]["file_bytes"] // 1024 * 0.9
    assert res["rss"]["map_added_kb"] < res["rss"]["load_added_kb"]
    d = res["delta"]
    assert d["added"] == 5000 and d["removed"] == 5000
    assert d["payload_bytes"] == 64 + 8 * 10_000 and d["manifest_bytes"] > 0
    assert (
        res["hash_store"]["store_records"] > 0 and res["hash_store"]["hash_store_us_per_record"] > 0
    )


def test_damaged_filter_fails_with_the_reason() -> None:
    p = bench("--corrupt-filter")
    assert p.returncode == 1
    res = json.loads(p.stdout)
    assert res["valid"] is False and res["ratios"] is None and res["members_missed"] > 0
    assert "members missed by the kiosk's lookup" in p.stderr
    assert "FAILED" in p.stderr
