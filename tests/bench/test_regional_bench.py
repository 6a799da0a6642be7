"""Smoke run of the regional benchmark's echo baseline and harness at a tiny size."""

import argparse

from host_tools.bench import regional
from host_tools.bench.loadgen import WindowedLoad


def test_echo_baseline_shape(tmp_path):
    p = argparse.ArgumentParser()
    regional.add_arguments(p)
    a = p.parse_args(
        [
            "--echo-only",
            "--terminals",
            "2",
            "--window",
            "8",
            "--duration",
            "0.5",
            "--serial",
            "40",
            "--workdir",
            str(tmp_path),
        ]
    )
    res = regional.run(a)
    for key in ("echo_qps", "echo_p50_us", "echo_p99_us", "echo_loaded_p50_us", "echo_serial_qps"):
        assert res[key] > 0, key
    assert res["echo_lost"] == 0 and res["echo_errors"] == 0
    assert res["echo_p99_us"] >= res["echo_p50_us"]


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
