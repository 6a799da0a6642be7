"""The alert batcher on its own: an injected clock, a recording publisher, real keys,
real sealing and a real SQLite alert queue. No broker: tests/regional/test_alerts.py and
tests/regional/test_alert_durability.py cover the path through Mosquitto to the
`fieldterm alerts` reader."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.errors import EnvelopeError, OperationError
from firmware.protocol import alerts
from host_tools.regional.alert_batcher import AlertBatcher, AlertQueue, hit_alert

REGION = "central"
TOPIC = "ft/v1/central/alert"  # docs/protocol.md: the alert topic of a region


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Info:
    """paho's MessageInfo as the batcher uses it: ``wait_for_publish(timeout)``."""

    def __init__(self, error: Exception | None = None):
        self.waited: list[float] = []
        self.error = error
        self.acked = error is None  # the broker's PUBACK

    def wait_for_publish(self, timeout: float) -> None:
        self.waited.append(timeout)
        if self.error is not None:
            raise self.error

    def is_published(self) -> bool:
        return self.acked


class Publisher:
    """Records every (time, topic, payload); can be told to fail or to return failing infos."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.sent: list[tuple[float, str, bytes]] = []
        self.infos: list[Info] = []
        self.connected = True
        self.fail: Exception | None = None
        self.info_error: Exception | None = None

    def __call__(self, topic: str, payload: bytes) -> Info:
        if self.fail is not None:
            raise self.fail
        self.sent.append((self.clock(), topic, payload))
        self.infos.append(Info(self.info_error))
        return self.infos[-1]


@dataclass(frozen=True)
class Query:
    terminal_id: str
    query_id: bytes


@dataclass(frozen=True)
class Record:
    reference: str
    status: str
    reporting_country: str


def write_public(path: Path, key: X25519PrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def rig(tmp_path):
    desk = X25519PrivateKey.generate()
    sign = Ed25519PrivateKey.generate()
    clock = Clock()
    pub = Publisher(clock)
    counts: Counter[str] = Counter()
    batcher = AlertBatcher(
        REGION,
        sign,
        write_public(tmp_path / "alert-desk.pub", desk),
        queue=AlertQueue(tmp_path / "audit.sqlite", lease=10.0, clock=clock),
        publish=pub,
        connected=lambda: pub.connected,
        clock=clock,
        counts=counts,
        src="ab" * 8,
    )
    return batcher, pub, desk, sign, clock, counts, tmp_path


def body(n: int) -> dict:
    q = Query(f"kiosk-{n:03d}", bytes([n]) * 16)
    rec = Record(f"UTO/{n}", "STOLEN", "UTO")
    return hit_alert(REGION, q, now=1000.0 + n, dkh=f"{n:016x}", rec=rec, list_version=7)


def opened(desk, payload):
    return alerts.open_batch(desk, REGION, payload)


def test_hit_alert_has_exactly_the_alert_fields_and_no_document_number():
    b = body(1)
    assert set(b) == {*alerts.ALERT_FIELDS, "late"} and b["late"] is False
    assert (b["terminal"], b["query_id"], b["reference"], b["t"]) == (
        "kiosk-001",
        "01" * 16,
        "UTO/1",
        1001.0,
    )


def test_a_hit_for_a_resend_is_signed_late():
    """A query that came as a resend (0x53: the kiosk had already shown an offline answer
    or UNKNOWN) gives an alert marked late, inside the signed body."""
    q = SimpleNamespace(terminal_id="kiosk-001", query_id=b"\x01" * 16, resend=True)
    b = hit_alert(REGION, q, now=1.0, dkh="00" * 8, rec=Record("UTO/1", "STOLEN", "UTO"),
                  list_version=7)  # fmt: skip
    assert b["late"] is True
    sign = Ed25519PrivateKey.generate()
    item = alerts.sign_alert(sign, b)
    assert alerts.verify_alert(sign.public_key(), item, REGION)["late"] is True
    item["alert"]["late"] = False  # the broker cannot reach it, nor can anyone else
    with pytest.raises(EnvelopeError):
        alerts.verify_alert(sign.public_key(), item, REGION)


def test_an_empty_batch_goes_out_on_every_flush(rig):
    batcher, pub, desk, _sign, clock, counts, _tmp = rig
    assert batcher.flush() is pub.infos[-1]
    clock.t += 2.0
    batcher.flush()
    assert [t for t, _, _ in pub.sent] == [1_800_000_000.0, 1_800_000_002.0]
    assert {topic for _, topic, _ in pub.sent} == {TOPIC}
    batches = [opened(desk, p) for _, _, p in pub.sent]
    epoch = batcher.queue.epoch
    assert len(epoch) == 16
    assert [(b.src, b.seq, b.t, b.alerts, b.epoch, b.low, b.high) for b in batches] == [
        ("ab" * 8, 1, 1_800_000_000.0, (), epoch, 1, 0),
        ("ab" * 8, 2, 1_800_000_002.0, (), epoch, 1, 0),
    ]
    assert (counts["alert_batches"], counts["alerts_sent"], counts["alerts"]) == (2, 0, 0)


def test_alerts_are_signed_batched_by_six_and_all_batches_are_the_same_size(rig):
    batcher, pub, desk, sign, _clock, counts, _tmp = rig
    for n in range(1, 9):
        batcher.add(body(n))
    assert len(batcher) == 8 and counts["alerts"] == 8
    batcher.flush()
    batcher.flush()
    batcher.flush()
    sizes = {len(p) for _, _, p in pub.sent}
    assert len(sizes) == 1  # full, partial and empty batches look alike on the wire
    got = [opened(desk, p).alerts for _, _, p in pub.sent]
    assert [len(a) for a in got] == [6, 2, 0]
    verified = [alerts.verify_alert(sign.public_key(), item, REGION) for a in got for item in a]
    assert [v["terminal"] for v in verified] == [f"kiosk-{n:03d}" for n in range(1, 9)]
    assert [v["aseq"] for v in verified] == list(range(1, 9))  # signed with its number
    assert {v["epoch"] for v in verified} == {batcher.queue.epoch}
    # low: the batch's alerts are still queued when it is sealed; they leave on the PUBACK
    assert [(opened(desk, p).low, opened(desk, p).high) for _, _, p in pub.sent] == [
        (1, 8), (7, 8), (9, 8),
    ]  # fmt: skip
    assert (counts["alert_batches"], counts["alerts_sent"], len(batcher)) == (3, 8, 0)


def test_nothing_is_sealed_while_the_broker_is_away(rig):
    batcher, pub, desk, *_ = rig
    batcher.add(body(1))
    pub.connected = False
    assert batcher.flush() is None and pub.sent == [] and len(batcher) == 1
    pub.connected = True
    batcher.flush()
    assert len(opened(desk, pub.sent[0][2]).alerts) == 1 and len(batcher) == 1
    batcher.settle()  # the PUBACK came: now it leaves the queue
    assert len(batcher) == 0


def test_a_failed_publish_puts_the_alerts_back_in_order(rig):
    batcher, pub, desk, *_ = rig
    for n in (1, 2, 3):
        batcher.add(body(n))
    pub.fail = OperationError("link lost")
    with pytest.raises(OperationError, match="link lost"):
        batcher.flush()
    assert len(batcher) == 3  # released, not lost
    pub.fail = None
    batcher.flush()
    terminals = [a["alert"]["terminal"] for a in opened(desk, pub.sent[0][2]).alerts]
    assert terminals == ["kiosk-001", "kiosk-002", "kiosk-003"]


def test_without_a_desk_key_alerts_are_counted_and_never_sent(tmp_path):
    pub = Publisher(Clock())
    counts: Counter[str] = Counter()
    queue = AlertQueue(tmp_path / "audit.sqlite")
    b = AlertBatcher(
        REGION,
        Ed25519PrivateKey.generate(),
        None,
        queue=queue,
        publish=pub,
        connected=lambda: True,
        counts=counts,
    )
    b.add(body(1))
    assert not b.enabled and b.flush() is None and b.reload_desk_key() is False
    assert pub.sent == [] and counts == {"alerts": 1}
    other = AlertBatcher(
        REGION, Ed25519PrivateKey.generate(), None, queue=queue, publish=pub, connected=bool
    )
    assert len(b.src) == 16 and b.src != other.src  # random per process: the desk tells them apart


def test_a_rotated_desk_key_is_picked_up_and_a_bad_one_ignored(rig, caplog):
    batcher, pub, old_desk, *_ = rig
    path = batcher.desk_key
    assert batcher.reload_desk_key() is False  # unchanged
    new_desk = X25519PrivateKey.generate()
    write_public(path, new_desk)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later rewrite
    assert batcher.reload_desk_key() is True
    assert batcher.reload_desk_key() is False  # seen already
    batcher.flush()
    payload = pub.sent[-1][2]
    assert opened(new_desk, payload).seq == 1
    with pytest.raises(EnvelopeError):
        opened(old_desk, payload)
    path.write_text("not a key")
    with caplog.at_level(logging.ERROR, logger="host_tools.regional.alert_batcher"):
        assert batcher.reload_desk_key() is False
    assert "keeping the old one" in caplog.text
    batcher.flush()
    assert opened(new_desk, pub.sent[-1][2]).seq == 2


def test_drain_sends_everything_queued_and_waits_for_the_broker(rig):
    batcher, pub, desk, *_ = rig
    for n in range(1, 8):
        batcher.add(body(n))
    assert batcher.drain(within=3.0) == 0
    assert [len(opened(desk, p).alerts) for _, _, p in pub.sent] == [6, 1]
    # the first batch's PUBACK was seen by the second flush; drain waits for the last one
    assert [i.waited for i in pub.infos] == [[], [3.0]] and len(batcher) == 0


def test_drain_says_what_it_could_not_send(rig, caplog):
    batcher, pub, *_ = rig
    batcher.add(body(1))
    pub.info_error = RuntimeError("The client is not currently connected.")
    with caplog.at_level(logging.WARNING, logger="host_tools.regional.alert_batcher"):
        assert batcher.drain() == 1  # never acknowledged: it stays queued
    assert "may not have reached the broker" in caplog.text
    caplog.clear()
    pub.info_error = None
    batcher.add(body(2))
    batcher.add(body(3))
    pub.connected = False
    with caplog.at_level(logging.WARNING, logger="host_tools.regional.alert_batcher"):
        assert batcher.drain() == 3
    assert "3 hit alert(s) not yet sent to the alert desk: they stay queued" in caplog.text
    assert b"UTO/2" not in caplog.text.encode()


def test_the_queue_survives_a_new_process_and_an_unacknowledged_batch_is_sent_again(rig):
    """What a SIGKILL leaves: alerts in the database, one batch out without its PUBACK.
    A new batcher on the same file (a restarted regional) sends them all, the leased ones
    once the lease runs out, in the same epoch with the same numbers."""
    batcher, pub, desk, sign, clock, _counts, tmp = rig
    for n in range(1, 9):
        batcher.add(body(n))
    pub.info_error = None
    batcher.flush()
    pub.infos[-1].acked = False  # the process dies before the PUBACK
    epoch = batcher.queue.epoch
    batcher.queue.close()
    again = AlertBatcher(
        REGION, sign, batcher.desk_key, publish=pub, connected=lambda: True, clock=clock,
        queue=AlertQueue(tmp / "audit.sqlite", lease=10.0, clock=clock),
    )  # fmt: skip
    assert again.queue.epoch == epoch and len(again) == 8
    again.flush()  # 1..6 are still leased: 7 and 8 go first
    clock.t += 11.0
    again.flush()  # the lease ran out: 1..6 again
    again.flush()
    got = [
        alerts.verify_alert(sign.public_key(), item, REGION)["aseq"]
        for _, _, p in pub.sent[1:]
        for item in opened(desk, p).alerts
    ]
    assert got == [7, 8, 1, 2, 3, 4, 5, 6] and len(again) == 0


def test_copies_of_one_query_raise_one_alert(tmp_path):
    """A kiosk re-sends a pending query after a reconnect (issue 14's resend rounds): every
    copy is answered, but the desk must see one alert per hit, not one per copy."""
    queue = AlertQueue(tmp_path / "audit.sqlite")
    first, again = body(4), body(4)
    again["late"] = True  # the copy came later, as a resend
    other = dict(body(4), terminal="kiosk-009")  # the same id from another kiosk is its own
    queue.add(first)
    queue.add(again)
    queue.add(other)
    rows = queue._db.execute("SELECT body FROM alert_queue ORDER BY aseq").fetchall()
    got = [(json.loads(r[0])["terminal"], json.loads(r[0])["late"]) for r in rows]
    assert got == [("kiosk-004", False), ("kiosk-009", False)]
