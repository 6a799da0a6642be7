"""Attack: the broker (or anyone on the path) withholds the alert batches.

Batches come at a fixed rate whether or not there are hits, so silence means the desk is
cut off, never that all is clear. The desk raises an alarm after 3 missed intervals, on
stderr and in its health file, and lowers it when batches arrive again."""

from __future__ import annotations

import json
import os
import subprocess
import time

from host_tools.provision.broker_config import REGIONAL_ALERT_INTERVAL
from host_tools.regional.desk import MISSED_INTERVALS
from tests.e2e.rig import wait_for

from .broker_rig import FIELDTERM, attack_region, expected, honest_queries

__all__ = ["attack_region"]

LIMIT = MISSED_INTERVALS * REGIONAL_ALERT_INTERVAL


def _wait(pred, what: str, timeout: float):
    return wait_for(pred, timeout, what)


def _health(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_desk_alarms_when_batches_stop(attack_region):
    region = attack_region
    health, err = region.dir / "desk-health.json", region.dir / "desk.stderr"
    with err.open("wb") as fh:
        desk = subprocess.Popen(
            [FIELDTERM, "alerts", "--config", str(region.desk_dir / "desk.toml"),
             "--health-file", str(health)],
            stdout=subprocess.DEVNULL, stderr=fh, env=dict(os.environ), cwd=region.dir,
        )  # fmt: skip
    try:
        _wait(lambda: "receiving alert batches" in err.read_text(), "first batch", 30)
        assert _health(health).get("alarm") is False or not _health(health)
        t0 = time.monotonic()
        region.stop_regionals()  # no more batches reach the desk
        _wait(lambda: "ALARM: no alert batch" in err.read_text(), "alarm on stderr", LIMIT + 10)
        elapsed = time.monotonic() - t0
        # the last batch came at most one interval before the stop
        assert LIMIT - REGIONAL_ALERT_INTERVAL - 0.5 <= elapsed <= LIMIT + 5, elapsed
        h = _wait(lambda: _health(health).get("alarm") is True and _health(health), "alarm", 5)
        assert h["seconds_since_batch"] >= LIMIT
        region.start_regional()
        _wait(lambda: "alert batches arrive again" in err.read_text(), "recovery", 30)
        _wait(lambda: _health(health).get("alarm") is False, "alarm lowered in health", 5)
        assert honest_queries(region, "kiosk-001", 1, 1) == expected(1, 1)
    finally:
        desk.terminate()
        desk.wait(timeout=20)
