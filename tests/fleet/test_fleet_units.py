"""The fleet simulator's pure parts: reconnect policy, traffic model, figures."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from firmware.transport.reconnect import KIOSK_RECONNECT, ReconnectPolicy
from host_tools.sim.fleet import Fault, GcPauses
from host_tools.sim.fleet_stats import FaultRecord, ScanRecord, percentile, summarise
from host_tools.sim.fleet_traffic import TrafficModel, offered_rate, scan_schedule


def test_reconnect_policy_doubles_from_a_jittered_start_up_to_the_cap() -> None:
    assert list(itertools.islice(KIOSK_RECONNECT.delays(1.0), 5)) == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(itertools.islice(KIOSK_RECONNECT.delays(0.7), 4)) == [0.7, 1.4, 2.8, 5.0]
    # the draw maps [0, 1) onto first * [0.5, 1.5)
    assert KIOSK_RECONNECT.first_delay(lambda: 0.0) == 0.5
    assert KIOSK_RECONNECT.first_delay(lambda: 0.5) == 1.0
    assert KIOSK_RECONNECT.first_delay(lambda: 0.999) == pytest.approx(1.499)


def test_reconnect_first_delays_of_a_fleet_are_spread_not_a_herd() -> None:
    rng = random.Random(5)
    firsts = [KIOSK_RECONNECT.first_delay(rng.random) for _ in range(10_000)]
    # uniform on [0.5, 1.5): mean 1.0, standard deviation 1/sqrt(12) = 0.289
    assert statistics.fmean(firsts) == pytest.approx(1.0, abs=0.02)
    assert statistics.pstdev(firsts) == pytest.approx(1 / math.sqrt(12), abs=0.01)
    in_any_100ms = max(sum(a <= f < a + 0.1 for f in firsts) for a in (0.5, 0.9, 1.4))
    assert in_any_100ms < 1200  # about 10 % per 100 ms, never the whole fleet at once


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"first": 0}, "first"), ({"first": 2, "cap": 1}, "cap"), ({"jitter": 1.0}, "jitter")],
)
def test_reconnect_policy_refuses_nonsense_naming_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ReconnectPolicy(**kw)


def test_schedule_offers_the_rate_with_bursts_on_neighbouring_lanes() -> None:
    model = TrafficModel(rate=100.0, burst_share=0.5, burst_size=50, burst_lanes=4)
    sched = scan_schedule(model, lanes=1000, duration=200.0, rng=random.Random(3))
    assert [t for t, _ in sched] == sorted(t for t, _ in sched)
    # 20,000 expected; Poisson plus bursts of 50: well within 5 %
    assert offered_rate(sched, 0.0, 200.0) == pytest.approx(100.0, rel=0.05)
    assert all(0 <= lane < 1000 for _, lane in sched)
    # bursts: some lanes get far more than the background mean of 10 scans
    per_lane = [0] * 1000
    for _, lane in sched:
        per_lane[lane] += 1
    assert max(per_lane) > 40


def test_schedule_without_bursts_is_poisson_per_lane() -> None:
    model = TrafficModel(rate=50.0, burst_share=0.0)
    sched = scan_schedule(model, lanes=10, duration=400.0, rng=random.Random(11))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sched)]
    # exponential gaps: mean 1/rate and coefficient of variation 1
    assert statistics.fmean(gaps) == pytest.approx(0.02, rel=0.05)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)


def test_traffic_model_and_fault_spec_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="rate"):
        TrafficModel(rate=0)
    with pytest.raises(ValueError, match="burst_share"):
        TrafficModel(rate=1, burst_share=1.0)
    assert Fault.parse("broker@12.5") == Fault("broker", 12.5, 0)
    assert Fault.parse("site@3:2") == Fault("site", 3.0, 2)
    for bad in ("reboot@3", "broker", "broker@soon"):
        with pytest.raises(ValueError, match="--fault"):
            Fault.parse(bad)


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def _scan(k: int, started: float, took: float | None, expected: str = "NO_MATCH",
          outcome: str = "NO_MATCH") -> ScanRecord:  # fmt: skip
    rec = ScanRecord(k, bytes([k]) * 16, expected, started)
    if took is not None:
        rec.answered_at, rec.outcome = started + took, outcome
    return rec


def test_summary_counts_lost_and_wrong_against_the_expected_outcome() -> None:
    scans = [
        _scan(0, 1.0, 0.05),
        _scan(1, 1.0, 0.07, "POSSIBLE_MATCH", "POSSIBLE_MATCH"),
        _scan(2, 1.0, 0.06, "POSSIBLE_MATCH", "NO_MATCH"),  # a hit answered clear: wrong
        _scan(3, 1.0, None),  # never answered: lost
    ]
    r = summarise(scans, [], [], query_timeout=2.0)
    assert (r["scans"], r["answered"], r["lost"], r["wrong"]) == (4, 3, 1, 1)
    assert r["p50_ms"] == 60.0 and r["max_ms"] == 70.0
    assert r["recovery_s"] is None or r["recovery_s"] == 0.0


def test_recovery_waits_for_every_dropped_link_and_every_caught_scan() -> None:
    fault = FaultRecord("broker", at=10.0, back_at=10.2)
    links = [(10.0, 0, False), (10.0, 1, False), (11.0, 0, True), (12.5, 1, True)]
    scans = [
        _scan(0, 5.0, 0.05),  # before the window: counts for p99 outside
        _scan(0, 9.0, 3.0),  # in flight at the fault, answered at 12.0
        _scan(1, 12.0, 2.0),  # made while kiosk 1 was down, answered at 14.0
        _scan(0, 20.0, 0.04),  # after the recovery
    ]
    r = summarise(scans, [fault], links, query_timeout=2.0)
    f = r["faults"][0]
    assert f["links_down"] == 2 and f["links_s"] == 2.5
    assert f["recovery_s"] == 4.0 and r["recovery_s"] == 4.0
    assert r["p99_outside_ms"] == 50.0  # the 3 s and 2 s scans are inside the window
    links.pop()  # kiosk 1 never came back
    assert summarise(scans, [fault], links, query_timeout=2.0)["recovery_s"] is None


def test_gc_pauses_records_each_collection_and_the_longest() -> None:
    """The simulator's collector pauses are inside every latency it measures, so it
    reports them; a collection over many tracked objects is timed, not guessed."""
    import gc  # noqa: PLC0415

    junk = [[i] for i in range(300_000)]  # tracked objects for a full collection to walk
    with GcPauses() as pauses:
        gc.collect()
        gc.collect()
    assert pauses.count == 2 and pauses.max_ms > 0.0
    after = pauses.count
    gc.collect()  # no longer listening
    assert pauses.count == after and pauses not in gc.callbacks
    del junk
