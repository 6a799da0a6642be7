"""A provisioned terminal gets verdicts through the real regional service, and a revoked
one is refused by it: the README flow run with the real ``fieldterm`` command.

init -> add-terminal x2 -> broker-config -> mosquitto -c -> fieldterm regional ->
fieldterm query --mrz-jsonl. The region is the shared LocalRegion (tests/provision/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))


def _fieldterm(*argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIELDTERM, *argv], capture_output=True, text=True, timeout=120, check=False, **kw
    )


@pytest.fixture
def regional(region, broker):
    """The synthetic list and one regional process, ready (its subscription granted)."""
    region.generate_list()
    region.start_regional()
    return region.regional


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
    assert hits.returncode == 0, hits.stderr + region.regional_logs()
    assert _verdicts(hits.stdout) == ["POSSIBLE MATCH"] * 3
    clean = _query(region.bundles["kiosk-002"], region.root / "unlisted.jsonl")
    assert _verdicts(clean.stdout) == ["CLEAR"] * 3


def test_revoked_terminal_is_refused_by_the_regional_service(region, broker, regional):
    """The broker still admits kiosk-002 (no reload): only terminals.json cuts it off."""
    assert region.cli("revoke", "kiosk-002") == 0
    regional.wait_health(lambda h: h.get("terminals") == 1, "the regional to drop kiosk-002")
    out = _query(region.bundles["kiosk-002"], region.root / "unlisted.jsonl")
    verdicts = _verdicts(out.stdout)
    assert verdicts and all(v == "UNKNOWN" for v in verdicts)
    ok = _query(region.bundles["kiosk-001"], region.root / "unlisted.jsonl")
    assert _verdicts(ok.stdout) == ["CLEAR"] * 3
