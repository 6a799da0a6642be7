"""``fieldterm sim fleet`` end to end: 200 kiosks behind 4 bridged site brokers (20 of them
direct to the region: a mixed region), 2 regional processes, a regional broker restart
and a site broker restart, all real (Mosquitto with mutual TLS, the bridges, ``fieldterm
regional``, the kiosks' own certificates, keys and sealed queries). Nothing may be lost
or answered against the list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPORT_KEYS = {
    "terminals", "sites", "regionals", "scans", "answered", "lost", "wrong",
    "p50_ms", "p99_ms", "max_ms", "recovery_s", "broker_rss_mb",
}  # fmt: skip
RATE, DURATION = 40.0, 24.0


def test_200_kiosks_4_sites_2_regionals_survive_broker_and_site_restarts(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "firmware.cli", "sim", "fleet",
        "--terminals", "200", "--sites", "4", "--direct", "20", "--regionals", "2",
        "--rate", str(RATE), "--duration", str(DURATION), "--hit-rate", "0.02",
        "--fault", "broker@6", "--fault", "site@15:1",
        "--workdir", str(tmp_path / "region"), "--seed", "3",
    ]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-4000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout  # one JSON line, nothing else on stdout
    report = json.loads(lines[0])
    assert REPORT_KEYS <= report.keys()
    assert (report["terminals"], report["sites"], report["regionals"]) == (200, 4, 2)
    # the schedule offers about RATE * DURATION scans (Poisson with bursts)
    assert 0.6 * RATE * DURATION < report["scans"] < 1.4 * RATE * DURATION
    assert report["lost"] == 0 and report["answered"] == report["scans"]
    assert report["wrong"] == 0
    # listed documents at 2 %: some hits, every one answered POSSIBLE MATCH
    assert report["hits"] >= 5 and report["hits_answered"] == report["hits"]
    broker, site = report["faults"]
    assert broker["kind"] == "broker" and broker["recovery_s"] is not None
    # kiosks behind the sites keep their links while the regional broker restarts; the 20
    # direct ones lose theirs and come back
    assert report["topology"] == "mixed" and report["direct_kiosks"] == 20
    assert broker["links_down"] == 20 and broker["links_s"] is not None
    # a site restart drops its 50 kiosks (site-02: kiosks 50-99, none of them direct);
    # they come back spread out (jittered backoff: first delays 1 s +/- 50 %)
    assert site["kind"] == "site" and site["links_down"] == 50
    assert site["back_p90_s"] - site["back_p10_s"] >= 0.3
    assert report["recovery_s"] == pytest.approx(
        max(broker["recovery_s"], site["recovery_s"]), abs=0.01
    )
    assert report["broker_rss_mb"] > 0
    assert report["sim_gc_max_ms"] >= 0.0  # the simulator's own pauses are reported
    assert "kiosks up 200/200" in r.stderr  # the live progress line
