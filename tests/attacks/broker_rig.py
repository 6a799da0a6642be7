"""What the broker and provisioning attack tests share: a provisioned region with a real
Mosquitto run from the generated config, the real regional service, and honest queries
sent with the real ``fieldterm query`` command from a kiosk's bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provision.helpers import Peer
from tests.support.localregion import TestRegion

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))
#: MQTT v5 reason code "Not authorized" (SUBACK, PUBACK)
NOT_AUTHORIZED = 0x87


def hostile(region: TestRegion, tid: str, client_id: str | None = None) -> Peer:
    """A raw MQTT v5 connection with ``tid``'s real certificate, connected."""
    return Peer.from_bundle(
        region.port, region.bundle(tid), client_id or f"hostile-{tid}"
    ).connect()


def honest_queries(region: TestRegion, tid: str, n_listed: int, n_unlisted: int) -> list[str]:
    """``fieldterm query`` for ``n_listed`` documents on the list and ``n_unlisted`` not on
    it, from ``tid``'s bundle; returns the verdicts in order (listed first)."""
    docs = region.listed[:n_listed] + region.unlisted[:n_unlisted]
    assert len(docs) == n_listed + n_unlisted, "the generated samples are too small"
    sample = region.dir / f"sample-{tid}.jsonl"
    sample.write_text("".join(json.dumps(d) + "\n" for d in docs))
    with sample.open() as fh:
        out = subprocess.run(
            [FIELDTERM, "query", "--config", str(region.terminal_toml(tid)), "--mrz-jsonl"],
            stdin=fh,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=dict(os.environ),
        )
    rows = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    assert len(rows) == len(docs), out.stderr[-2000:] + region.regional_logs()[-2000:]
    return [r.get("verdict", "") for r in rows]


def expected(n_listed: int, n_unlisted: int) -> list[str]:
    """The verdicts the generated list implies (independent of the service)."""
    return ["POSSIBLE MATCH"] * n_listed + ["CLEAR"] * n_unlisted


@pytest.fixture
def attack_region(tmp_path: Path) -> Iterator[TestRegion]:
    """kiosk-001 (honest) and kiosk-002..kiosk-007 (stolen, revoked, hostile), a list, the
    broker from broker/mosquitto.conf and one regional process, ready."""
    tids = tuple(f"kiosk-{i:03d}" for i in range(1, 8))
    with TestRegion(tmp_path / "region", terminals=tids, records=2000, sample_size=20) as r:
        r.provision(desk=True)
        r.generate_list()
        r.start_broker()
        r.start_regional()
        yield r
