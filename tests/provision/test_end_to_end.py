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

from host_tools.provision import deploy
from host_tools.provision.authority import RegionAuthority
from tests.support.regional_audit import audit_db, audit_rows, wait_rows

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


def _query(bundle: Path, sample: Path, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return _fieldterm(
        "query",
        "--config",
        str(bundle / "terminal.toml"),
        "--mrz-jsonl",
        "--timeout",
        str(timeout),
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


def _rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_revoked_terminal_is_refused_by_the_regional_service(region, broker, regional):
    """Defence in depth: with the broker not told (no dynamic-security command, no reload,
    as when the technician cannot reach it) only terminals.json cuts kiosk-002 off. The
    refusal is the regional's own (counted and audited as ``unknown_terminal``, once per
    query), not a timeout, and kiosk-001 is still answered. (tests/attacks/ shows that the
    CLI's revoke also closes the session at the broker.)"""
    db = audit_db(region.regional_toml)
    with RegionAuthority.open(
        region.registry, region.passphrase.read_bytes().splitlines()[0]
    ) as ra:
        ra.revoke("kiosk-002")
        deploy.refresh_all(ra)  # the files only: not deploy.apply_all
    regional.wait_health(lambda h: h.get("terminals") == 1, "the regional to drop kiosk-002")
    before = len(audit_rows(db, "kiosk-002"))
    out = _query(region.bundles["kiosk-002"], region.root / "unlisted.jsonl", timeout=3.0)
    sent = _rows(out.stdout)
    assert len(sent) == 3 and all(r["verdict"] == "UNKNOWN" for r in sent), out.stderr
    rows = wait_rows(db, "kiosk-002", before + 3)[before:]
    assert [r.outcome for r in rows] == ["REFUSED:unknown_terminal"] * 3
    regional.wait_health(
        lambda h: h.get("refusals", {}).get("unknown_terminal", 0) >= 3, "the refusals counted"
    )
    assert regional.health()["refusals"] == {"unknown_terminal": 3}
    ok = _query(region.bundles["kiosk-001"], region.root / "unlisted.jsonl")
    answered = _rows(ok.stdout)
    assert [r["verdict"] for r in answered] == ["CLEAR"] * 3
    ids = [bytes.fromhex(r["query_id"]) for r in answered]
    audited = {r.query_id: r.outcome for r in wait_rows(db, "kiosk-001", len(ids))}
    assert [audited.get(q) for q in ids] == ["NO_MATCH"] * 3
