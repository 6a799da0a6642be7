"""Hit alerts end to end: a real regional service, Mosquitto with the generated ACL, the
desk's files from `fieldterm provision alert-desk` and the `fieldterm alerts` reader.
What the broker carries on the alert topic is captured and checked as well."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.mrz import parse
from firmware.protocol import topics
from firmware.protocol.dockey import DocumentKey
from tests.provision.helpers import Peer, provision

from .conftest import FIELDTERM, WAIT, Region, wait_for

pytestmark = pytest.mark.timeout(240)
ALERT = topics.alert_topic("central")


READY = "receiving alert batches"


@contextlib.contextmanager
def alert_reader(desk: Path, timeout: float) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`fieldterm alerts --count 1 --json` in the background, yielded once it has opened a
    batch (so it is subscribed before the test makes a hit), with its stderr file; killed
    if still running."""
    cmd = [FIELDTERM, "alerts", "--config", str(desk / "desk.toml"), "--count", "1"]
    err = desk.parent / f"alerts-{time.monotonic_ns()}.stderr"
    with err.open("w") as err_fh:
        reader = subprocess.Popen(
            [*cmd, "--timeout", str(timeout), "--json"],
            stdout=subprocess.PIPE,
            stderr=err_fh,
            text=True,
        )
    try:
        wait_for(lambda: READY in err.read_text() or reader.poll() is not None, "the reader")
        yield reader, err
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def query_listed(region: Region, terminal: str, index: int) -> Verdict:
    """A listed document queried as ``terminal``: must come back POSSIBLE_MATCH."""
    with QueryClient(ClientConfig.load(region.terminal_toml(terminal))) as qc:
        assert qc.wait_connected(WAIT)
        hit = qc.query(DocumentKey.from_mrz(parse(region.listed[index])), timeout=10)
    assert hit.outcome == "POSSIBLE_MATCH"
    return hit


@pytest.fixture(scope="module")
def desk(region: Region, broker):
    out = region.root / "desk"
    pw = region.root / "passphrase.txt"
    assert provision(region.root / "registry", "alert-desk", "--out", str(out), passphrase=pw) == 0
    region.start_regional()
    yield out
    region.stop_all()


@pytest.fixture
def sniffer(region: Region, desk):
    """A subscriber on the alert topic with the desk's TLS identity: what the broker sees.
    It connects on the broker's loopback service listener: on the terminals' listener a
    client id is its certificate's CN, and it would take the desk reader's session over."""
    peer = Peer(
        region.service_port, desk / "ca.crt", desk / "desk.crt", desk / "desk.key", "sniffer"
    )
    peer.connect()
    assert not peer.subscribe(ALERT)[0].is_failure
    yield peer
    peer.close()


def test_desk_files_and_modes(desk):
    assert desk.stat().st_mode & 0o777 == 0o700
    names = {p.name: p.stat().st_mode & 0o777 for p in desk.iterdir()}
    assert names == {
        "ca.crt": 0o644,
        "desk.crt": 0o644,
        "desk.key": 0o600,
        "alert-desk.key": 0o600,
        "regional-sign.pub": 0o644,
        "desk.toml": 0o644,
    }


def test_hit_reaches_the_desk_and_the_broker_cannot_tell(region, desk, sniffer):
    with alert_reader(desk, timeout=90) as (reader, err):
        sniffer.wait_messages(ALERT, 2)  # batches flow before any hit: no hit, same traffic
        before = len(sniffer.received)
        hit = query_listed(region, "kiosk-001", 0)
        assert hit.record is not None
        out, _ = reader.communicate(timeout=90)
    assert reader.returncode == 0, err.read_text()
    alert = json.loads(out.strip().splitlines()[-1])
    assert alert["terminal"] == "kiosk-001"
    assert alert["query_id"] == hit.query_id.hex()
    assert alert["reference"] == hit.record["reference"]
    assert alert["status"] == hit.record["status"]
    # the broker's view: every batch the same size, before and after the hit, and no
    # readable trace of the terminal, the reference or the reporting country
    wait_for(lambda: len(sniffer.received) >= before + 2, "batches after the hit")
    payloads = [p for t, p in sniffer.received if t == ALERT]
    assert len({len(p) for p in payloads}) == 1, sorted({len(p) for p in payloads})
    for secret in (b"kiosk-001", hit.record["reference"].encode(), b'"reference"'):
        assert not any(secret in p for p in payloads)


def test_terminals_cannot_read_alerts(region, desk, sniffer):
    kiosk = Peer.from_bundle(region.port, region.bundles["kiosk-002"], "k2-listener").connect()
    d = region.broker_dir
    regional = Peer(region.port, d / "ca.crt", d / "regional.crt", d / "regional.key", "rg-barrier")
    regional.connect()
    try:
        kiosk.subscribe(ALERT)  # Mosquitto grants the SUBACK and then filters by the ACL
        mine = topics.response_topic(region.region, "kiosk-002")
        kiosk.subscribe(mine)
        n = sniffer.count(ALERT)
        wait_for(lambda: sniffer.count(ALERT) >= n + 2, "two more batches")
        # A barrier instead of a pause: Mosquitto queues deliveries to one client in the
        # order it handled the publishes, so once a message published after those batches
        # reaches the kiosk, any alert it was going to get would have come first.
        regional.publish(mine, b"barrier")
        kiosk.wait_messages(mine, 1)
        assert kiosk.count(ALERT) == 0
    finally:
        kiosk.close()
        regional.close()


def test_desk_reports_a_batch_it_never_got(region, desk, capsys):
    """Sequence gaps are reported: alerts in a lost batch must not vanish silently."""
    from firmware.protocol import alerts  # noqa: PLC0415
    from firmware.protocol import keys as pkeys  # noqa: PLC0415
    from host_tools.regional.desk import Desk, DeskConfig  # noqa: PLC0415

    cfg = DeskConfig.load(desk / "desk.toml")
    seen = []

    class Out:
        def write(self, s):
            seen.append(s)

        def flush(self):
            pass

    d = Desk(cfg, Out())  # type: ignore[arg-type]
    pub = pkeys.load_x25519_private(cfg.alert_key).public_key()
    for seq in (1, 2, 5):
        d.on_message(ALERT, alerts.seal_batch(pub, "central", src="a", seq=seq, t=0, alerts=[]))
    d.on_message(ALERT, alerts.seal_batch(pub, "central", src="b", seq=1, t=0, alerts=[]))
    d.on_message(ALERT, b"\x01Anot a batch" + bytes(60))
    assert (d.batches, d.missed, d.refused, d.received) == (4, 2, 1, 0)
    assert seen == []
    # a batch with an alert, then the same batch again (redelivered or replayed by the broker)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    sign_pem = (region.broker_dir / "regional-sign.key").read_bytes()
    sign = serialization.load_pem_private_key(sign_pem, None)
    assert isinstance(sign, Ed25519PrivateKey)
    body = {
        "v": 1, "region": "central", "terminal": "kiosk-001", "query_id": "00" * 16,
        "dkh": "11" * 8, "reference": "UTO/1", "status": "LOST", "reporting_country": "UTO",
        "list_version": 1, "t": 1.0,
    }  # fmt: skip
    hit = alerts.seal_batch(
        pub, "central", src="a", seq=6, t=0, alerts=[alerts.sign_alert(sign, body)]
    )
    d.on_message(ALERT, hit)
    d.on_message(ALERT, hit)
    assert (d.received, d.duplicates, len(seen)) == (1, 1, 1)


def test_alerts_queued_at_shutdown_are_sent_before_the_regional_exits(region, desk, monkeypatch):
    """A hit answered just before SIGTERM must still reach the desk, not wait for a tick
    that never comes (the interval is set far beyond the test)."""
    region.stop_all()
    region.start_regional()  # the usual 2 s batches: the reader hears them and is ready
    with alert_reader(desk, timeout=60) as (reader, err):
        region.stop_all()
        monkeypatch.setenv("FIELDTERM_REGIONAL__ALERT_INTERVAL", "60")
        proc, health = region.start_regional()
        hit = query_listed(region, "kiosk-003", 1)
        wait_for(lambda: region.health(health).get("alerts_queued") == 1, "the queued alert")
        region.stop_all()  # SIGTERM: the regional drains its queue on the way out
        out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0, err.read_text()
    assert json.loads(out.strip().splitlines()[-1])["query_id"] == hit.query_id.hex()
    assert proc.returncode == 0


def test_rotated_desk_takes_over_and_the_old_one_is_shut_out(region, desk, broker):
    """`provision alert-desk --rotate` (a desk machine lost): the old certificate is refused
    after the broker reload, batches seal to the new key (the running regional service picks
    it up) and the old key opens none of them."""
    from firmware.errors import EnvelopeError  # noqa: PLC0415
    from firmware.protocol import alerts  # noqa: PLC0415
    from firmware.protocol import keys as pkeys  # noqa: PLC0415
    from tests.provision.helpers import ConnectRefused  # noqa: PLC0415

    region.stop_all()
    region.start_regional()
    new = region.root / "desk-rotated"
    pw = region.root / "passphrase.txt"
    rc = provision(
        region.root / "registry", "alert-desk", "--rotate", "--out", str(new), passphrase=pw
    )
    assert rc == 0
    assert (new / "alert-desk.key").read_bytes() != (desk / "alert-desk.key").read_bytes()
    assert (region.broker_dir / "alert-desk.pub").read_bytes() != (
        pkeys.load_x25519_private(desk / "alert-desk.key").public_key().public_bytes(*_spki())
    )
    broker.reload()
    old = Peer(region.port, desk / "ca.crt", desk / "desk.crt", desk / "desk.key", "old-desk")
    with pytest.raises(ConnectRefused):  # its certificate is in the reloaded CRL
        old.connect()
    peer = Peer(region.port, new / "ca.crt", new / "desk.crt", new / "desk.key", "new-desk")
    peer.connect()
    try:
        assert not peer.subscribe(ALERT)[0].is_failure
        new_key = pkeys.load_x25519_private(new / "alert-desk.key")
        old_key = pkeys.load_x25519_private(desk / "alert-desk.key")

        def opened_with_new_key() -> bool:
            for _, payload in list(peer.received):
                try:
                    alerts.open_batch(new_key, "central", payload)
                except EnvelopeError:
                    continue
                with pytest.raises(EnvelopeError):
                    alerts.open_batch(old_key, "central", payload)
                return True
            return False

        wait_for(opened_with_new_key, "a batch sealed to the rotated key")
    finally:
        peer.close()
        region.stop_all()


def _spki():
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
