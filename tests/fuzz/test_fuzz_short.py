"""A short, bounded fuzz run of every harness, and a short live fuzz, as part of ``make test``.

The long runs are ``make fuzz`` (``python -m tests.fuzz.run --inputs 1000000 --live N``).
Each harness gets a few seconds and a memory limit; a crash, an unexpected exception, a hang
(libFuzzer ``-timeout``) or an out-of-memory fails the test. The live fuzz sends a few
thousand mutated payloads from a terminal's certificate through the real broker to a real
regional, first with the refusal budget lifted (junk reaches the ticket parser), then with
the provisioned budget (the rate limiter refuses most of it unopened); every payload must be
accounted for by a refusal reason or an answer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from host_tools.chaos import fuzz_mqtt
from tests.fuzz.run import harnesses, run_harness, stats
from tests.support.localregion import TestRegion
from tests.support.require import need

SECONDS = 4


@pytest.mark.slow
@pytest.mark.parametrize("path", harnesses(), ids=lambda p: p.stem)
def test_harness_runs_clean_for_a_short_while(path):
    if importlib.util.find_spec("atheris") is None:
        need("fuzz", "atheris is not installed (pip install -e '.[dev]' on x86_64)")
    proc = run_harness(path, SECONDS, rss_limit_mb=1024, input_timeout=5)
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = stats(proc.stderr, SECONDS)
    assert s.crashes == 0 and s.artifact is None, proc.stderr[-4000:]
    assert s.inputs > 100, proc.stderr[-2000:]  # it really exercised the target
    assert 0 < s.rss_start_mb <= s.rss_peak_mb < 1024


@pytest.mark.slow
def test_live_fuzz_through_broker_and_regional_accounts_for_every_payload(tmp_path: Path):
    tids = (fuzz_mqtt.FUZZER, fuzz_mqtt.OTHER)
    with TestRegion(tmp_path / "region", terminals=tids, records=2000, sample_size=20) as region:
        region.provision().generate_list()
        region.start_broker()
        # a small negative cache, so that it fills and evicts within the run
        env = fuzz_mqtt.regional_env(1_000_000, 1_000_000.0, max_refused=500)
        region.start_regional(env=env)
        lifted = fuzz_mqtt.run(region, 3000, seed=14, honest_every=250)
        assert lifted.problems() == [], lifted.text()
        assert lifted.bad_tickets_cached == 500  # full, at the configured limit
        assert len(lifted.rss_samples) == 10
        assert lifted.handled == lifted.to_query > 2500
        assert lifted.honest >= 10 and lifted.honest_right == lifted.honest
        # junk reached each layer: the envelope, the ticket (HPKE, then the signature), the
        # AEAD, the time window, the pending box, the replay store
        for reason in ("malformed", "version", "ticket", "signature", "aead", "window"):
            assert lifted.refusals.get(reason, 0) > 0, (reason, lifted.refusals)
        assert lifted.refusals.get("pending", 0) + lifted.refusals.get("replay", 0) > 0
        assert "rate_limited" not in lifted.refusals

        region.stop_regionals()  # the provisioned refusal budget (regional.toml defaults)
        region.start_regional(env=fuzz_mqtt.regional_env(50, 5.0))
        limited = fuzz_mqtt.run(region, 1500, seed=15, honest_every=250)
        assert limited.problems() == [], limited.text()
        assert limited.handled == limited.to_query
        assert limited.refusals.get("rate_limited", 0) > 100, limited.refusals
        assert limited.honest_right == limited.honest > 0  # a genuine session still answered


def test_the_live_report_fails_on_growth_in_the_second_half_only() -> None:
    """Caches fill in the first half (the harness sets small limits), so RSS that still
    grows after it is a leak; growth early on is the caches filling."""
    mb = 1024
    rep = fuzz_mqtt.Report(
        handled=10, to_query=10, honest=1, honest_right=1, after_ok=["ok"], alive=True,
        rss_before_kb=50 * mb, rss_peak_kb=70 * mb,
        rss_samples=[(i, (50 + 4 * min(i, 5)) * mb) for i in range(1, 11)],
    )  # fmt: skip
    assert rep.problems() == [] and rep.late_growth_mb == 0.0
    rep.rss_samples = [(i, (50 + 2 * i) * mb) for i in range(1, 11)]  # 2 MB per tenth
    assert rep.late_growth_mb == 10.0
    assert rep.problems() == [
        "regional RSS grew 10.0 MB in the second half of the run (caches full: a leak)"
    ]
