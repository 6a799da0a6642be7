"""The offline-list measurement (small version of what the closing note reports)."""

from __future__ import annotations

from host_tools.offline.measure import measure


def test_small_measurement_is_consistent() -> None:
    r = measure(200_000, 8, probes=100_000, py_probes=20_000)
    assert 199_990 <= r["keys"] <= 200_000  # np.unique may drop a 64-bit collision
    assert r["python_agrees_with_c"] is True and r["members_missed"] == 0
    assert 9.0 <= r["bits_per_record"] <= 9.5  # 9.02 at 10 M; the size factor grows for small n
    assert 0.25 <= r["false_positive_pct"] <= 0.55  # 2^-8 = 0.39 %, 100 k probes
    assert r["rss_map"]["RssAnon_added_kb"] <= 256  # mapping copies nothing
    assert r["rss_map"]["map_rss_kb_after_release"] == 0
