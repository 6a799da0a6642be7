"""The adaptive query timeout's estimator (RFC 6298), on numbers worked out by hand from
the RFC's formulas (alpha 1/8, beta 1/4, K 4), not by the code under test."""

from __future__ import annotations

import random

import pytest

from firmware.client.rtt import RoundTripEstimator


def test_before_any_sample_the_timeout_is_the_configured_floor():
    est = RoundTripEstimator(floor=2.0, ceiling=10.0)
    assert est.timeout() == 2.0 and est.snapshot()["samples"] == 0


def test_three_samples_follow_rfc_6298_by_hand():
    est = RoundTripEstimator(floor=0.5, ceiling=10.0)
    est.sample(1.0)  # first: srtt = 1.0, rttvar = 0.5 -> 1.0 + 4 * 0.5
    assert (est.srtt, est.rttvar, est.timeout()) == (1.0, 0.5, 3.0)
    est.sample(2.0)  # rttvar = .75*.5 + .25*1 = .625; srtt = .875 + .25 = 1.125
    assert est.rttvar == pytest.approx(0.625) and est.srtt == pytest.approx(1.125)
    assert est.timeout() == pytest.approx(3.625)
    est.sample(1.5)  # rttvar = .75*.625 + .25*.375 = .5625; srtt = .984375 + .1875
    assert est.rttvar == pytest.approx(0.5625) and est.srtt == pytest.approx(1.171875)
    assert est.timeout() == pytest.approx(3.421875)


def test_a_fast_steady_link_keeps_the_floor_and_a_slow_one_is_capped():
    fast = RoundTripEstimator(floor=2.0, ceiling=10.0)
    for _ in range(50):
        fast.sample(0.05)
    assert fast.timeout() == 2.0  # 0.05 + 4 * ~0 is far under the floor
    slow = RoundTripEstimator(floor=2.0, ceiling=10.0)
    for _ in range(50):
        slow.sample(30.0)
    assert slow.timeout() == 10.0


def test_500_ms_plus_minus_200_each_way_gets_a_timeout_above_every_round_trip():
    """Round trips of two legs each 0.3..0.7 s (0.6..1.4 s) plus a retransmission now and
    then (one in ten: +1 s, a TCP RTO at this RTT): the timeout clears them after a few
    samples, where the fixed 2 s gave TIMEOUTs."""
    rng = random.Random(5)
    est = RoundTripEstimator(floor=2.0, ceiling=10.0)
    trips = [
        rng.uniform(0.3, 0.7) + rng.uniform(0.3, 0.7) + (1.0 if rng.random() < 0.1 else 0.0)
        for _ in range(40)
    ]
    for r in trips[:10]:
        est.sample(r)
    later = trips[10:]
    assert max(later) > 2.0  # the fixed timeout would have cut some of these off
    assert all(r < est.timeout() for r in later)
    assert est.timeout() < 6.0  # and it is not simply the ceiling


def test_backoff_doubles_to_the_ceiling_and_a_sample_resets_it():
    est = RoundTripEstimator(floor=2.0, ceiling=10.0)
    seen = []
    for _ in range(5):
        est.backoff()
        seen.append(est.timeout())
    assert seen == [4.0, 8.0, 10.0, 10.0, 10.0]
    est.sample(1.0)
    assert est.timeout() == 3.0  # srtt 1.0 + 4 * 0.5, no backoff left


def test_backoff_doubles_the_clamped_timeout_not_a_raw_value_under_the_floor():
    """A fast link turns slow: samples of 0.05 s keep the raw value far under the 2 s
    floor; the first timeout must still give 4 s, not 2 * 0.05 clamped back to 2."""
    est = RoundTripEstimator(floor=2.0, ceiling=10.0)
    for _ in range(5):
        est.sample(0.05)
    est.backoff()
    assert est.timeout() == 4.0


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="floor <= ceiling"):
        RoundTripEstimator(floor=3.0, ceiling=2.0)
