"""The desk's bookkeeping of numbered alerts (issue 14), fed sealed batches directly:
gaps below a batch's ``low`` are named, copies are shown once, and a new epoch after an
old one with alerts still owed is an alarm with the exact count. Real keys and sealing;
tests/regional/test_alert_durability.py runs the same through real processes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.protocol import alerts
from host_tools.regional.desk import Desk, DeskConfig

REGION = "central"
TOPIC = "ft/v1/central/alert"


class Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> None:
        self.lines.append(s)

    def flush(self) -> None:
        pass


class Rig:
    def __init__(self, tmp: Path):
        self.desk_key = X25519PrivateKey.generate()
        self.sign = Ed25519PrivateKey.generate()
        (tmp / "desk.key").write_bytes(
            self.desk_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp / "sign.pub").write_bytes(
            self.sign.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        cfg = DeskConfig(REGION, tmp / "desk.key", tmp / "sign.pub", broker=None)  # type: ignore[arg-type]
        self.out = Out()
        self.desk = Desk(cfg, self.out)  # type: ignore[arg-type]
        self.seq = 0

    def batch(self, epoch: str, aseqs: list[int], low: int, high: int) -> None:
        items: list[dict[str, Any]] = []
        for a in aseqs:
            body = {
                "v": 1, "region": REGION, "terminal": "kiosk-001", "query_id": f"{a:032x}",
                "dkh": "11" * 8, "reference": f"UTO/{a}", "status": "LOST",
                "reporting_country": "UTO", "list_version": 1, "t": 1.0,
                "epoch": epoch, "aseq": a,
            }  # fmt: skip
            items.append(alerts.sign_alert(self.sign, body))
        self.seq += 1
        self.desk.on_message(
            TOPIC,
            alerts.seal_batch(
                self.desk_key.public_key(), REGION, src="p1", seq=self.seq, t=0.0,
                alerts=items, epoch=epoch, low=low, high=high,
            ),
        )  # fmt: skip


def test_alerts_below_low_that_never_came_are_named(tmp_path, caplog):
    r = Rig(tmp_path)
    r.batch("e1", [], low=5, high=4)  # the desk starts listening: 1..4 came before it
    r.batch("e1", [5, 6], low=5, high=8)
    with caplog.at_level(logging.ERROR, logger="host_tools.regional.desk"):
        r.batch("e1", [8], low=8, high=8)  # 7 was sent (below low) and never came
    h = r.desk.health()
    assert (h["received"], h["missing_alerts"]) == (3, 1)
    assert "missed 1 hit alert(s) #7 of alert queue e1" in caplog.text
    r.batch("e1", [8], low=8, high=8)  # the same alert again (a lease ran out)
    assert (r.desk.received, r.desk.duplicates, len(r.out.lines)) == (3, 1, 3)
    r.batch("e1", [], low=9, high=8)
    assert r.desk.health()["missing_alerts"] == 1  # nothing new missing


def test_a_new_epoch_with_alerts_owed_is_an_alarm_with_their_count(tmp_path, caplog):
    r = Rig(tmp_path)
    r.batch("e1", [1, 2], low=1, high=6)  # 6 numbered, 2 here so far
    with caplog.at_level(logging.ERROR, logger="host_tools.regional.desk"):
        r.batch("e2", [1], low=1, high=1)  # the queue was re-created: 3..6 are gone
    h = r.desk.health()
    assert (h["missing_alerts"], h["alert_epoch"], h["received"]) == (4, "e2", 3)
    assert "ALARM: the regional's alert queue restarted (epoch e1 -> e2): 4 alert(s)" in (
        caplog.text
    )
    r.batch("e2", [], low=3, high=2)  # e2's #2 was sent and never came: named too
    assert r.desk.health()["missing_alerts"] == 5


def test_batches_of_an_older_regional_still_work(tmp_path):
    r = Rig(tmp_path)
    body = {
        "v": 1, "region": REGION, "terminal": "kiosk-001", "query_id": "00" * 16,
        "dkh": "11" * 8, "reference": "UTO/1", "status": "LOST", "reporting_country": "UTO",
        "list_version": 1, "t": 1.0,
    }  # fmt: skip
    payload = alerts.seal_batch(
        r.desk_key.public_key(), REGION, src="old", seq=1, t=0.0,
        alerts=[alerts.sign_alert(r.sign, body)],
    )  # fmt: skip
    r.desk.on_message(TOPIC, payload)
    assert (r.desk.received, r.desk.missing_alerts, r.desk.epoch) == (1, 0, None)
