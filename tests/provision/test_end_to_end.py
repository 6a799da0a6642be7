"""A provisioned terminal gets verdicts through the real regional service, and a revoked
one is refused by it: the README flow run with the real ``fieldterm`` command.

init -> add-terminal x2 -> broker-config -> mosquitto -c -> fieldterm regional ->
fieldterm query --mrz-jsonl. Skipped until the regional service and the query client exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))


def _fieldterm(*argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIELDTERM, *argv], capture_output=True, text=True, timeout=120, check=False, **kw
    )


@pytest.fixture
def regional(region, broker):
    d = region.broker_dir
    gen = _fieldterm(
        "sltd",
        "generate",
        "--records",
        "2000",
        "--seed",
        "5",
        "--out",
        str(d / "sltd.sqlite"),
        "--listed-sample",
        str(region.root / "listed.jsonl"),
        "--unlisted-sample",
        str(region.root / "clean.jsonl"),
        "--sample-size",
        "3",
        "--no-progress",
    )
    assert gen.returncode == 0, gen.stderr
    log = (region.root / "regional.log").open("wb")
    proc = subprocess.Popen(
        [FIELDTERM, "regional", "--config", str(d / "regional.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # Queries sent before the service has subscribed would be lost by the broker: wait
    # until it reports itself connected (it subscribes in on_connect, before that).
    health = d / "regional-health.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (region.root / "regional.log").read_text()
        try:
            if json.loads(health.read_text()).get("connected"):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    else:
        pytest.fail("regional service did not report connected within 60 s")
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    log.close()


def _wait_health(region, pred, what: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until the regional's health file satisfies ``pred``."""
    health = region.broker_dir / "regional-health.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred(json.loads(health.read_text())):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _query(bundle: Path, sample: Path) -> subprocess.CompletedProcess[str]:
    return _fieldterm(
        "query",
        "--config",
        str(bundle / "terminal.toml"),
        "--mrz-jsonl",
        "--timeout",
        "10",
        stdin=sample.open(),
        env=dict(os.environ),
    )


def _verdicts(out: str) -> list[str]:
    return [json.loads(line).get("verdict", "") for line in out.splitlines() if line.strip()]


def test_provisioned_terminal_gets_verdicts(region, regional):
    hits = _query(region.bundles["kiosk-001"], region.root / "listed.jsonl")
    assert hits.returncode == 0, hits.stderr + (region.root / "regional.log").read_text()
    assert _verdicts(hits.stdout) == ["POSSIBLE MATCH"] * 3
    clean = _query(region.bundles["kiosk-002"], region.root / "clean.jsonl")
    assert _verdicts(clean.stdout) == ["CLEAR"] * 3


def test_revoked_terminal_is_refused_by_the_regional_service(region, broker, regional):
    """The broker still admits kiosk-002 (no reload): only terminals.json cuts it off."""
    assert region.cli("revoke", "kiosk-002") == 0
    _wait_health(region, lambda h: h.get("terminals") == 1, "the regional to drop kiosk-002")
    out = _query(region.bundles["kiosk-002"], region.root / "clean.jsonl")
    verdicts = _verdicts(out.stdout)
    assert verdicts and all(v == "UNKNOWN" for v in verdicts)
    ok = _query(region.bundles["kiosk-001"], region.root / "clean.jsonl")
    assert _verdicts(ok.stdout) == ["CLEAR"] * 3
