"""Attack (issue 13 part 5, sessions): tickets that outlive their welcome. A 10-year ticket
signed with a key rotated out was accepted 300 days after its grace ended, because the
cached session was never checked against the key's validity again.

End to end: real Mosquitto from the generated config, a real regional process, real
bundles and the real session code sealing tickets as a kiosk would (with the attacker's
choice of lifetime, issue time and key). Each refusal is proven by its reason in the
regional's health and audit trail, and honest queries are answered throughout.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.client.client import QueryClient
from firmware.client.config import ClientConfig
from firmware.protocol import keys, topics
from firmware.protocol.session import TerminalSession
from tests.attacks.leak_support import REGION, dk_of, make_region, wait_for
from tests.provision.helpers import Peer
from tests.support.localregion import TestRegion
from tests.support.regional_audit import audit_db, audit_rows

pytestmark = pytest.mark.timeout(300)
HONEST, ATTACKER = "kiosk-001", "kiosk-002"
DAY = 86400.0


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    r = make_region(tmp_path_factory.mktemp("sessions"), (HONEST, ATTACKER))
    try:
        r.start_regional()
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def peer(region) -> Iterator[Peer]:
    """The attacker's MQTT connection: kiosk-002's certificate, reading its responses."""
    p = Peer.from_bundle(region.port, region.bundle(ATTACKER), ATTACKER).connect()
    p.subscribe(topics.response_topic(REGION, ATTACKER))
    yield p
    p.close()


def session(region: TestRegion, *, key=None, now: float | None = None, lifetime: float = DAY):
    cfg = ClientConfig.load(region.terminal_toml(ATTACKER))
    return TerminalSession.new(
        region=REGION,
        terminal_id=ATTACKER,
        identity_key=key or keys.load_ed25519_private(cfg.identity_key),
        regional_kem_public=keys.load_x25519_public(cfg.regional_kem_public),
        now=time.time() if now is None else now,
        lifetime=lifetime,
    )


def refused(region: TestRegion, peer: Peer, payload: bytes) -> str:
    """Publish one query; the reason of the refusal it got (its audit row), and no answer."""
    db = audit_db(region.regional_toml)
    before = len(audit_rows(db, ATTACKER))
    answers = peer.count(topics.response_topic(REGION, ATTACKER))
    assert peer.publish(topics.query_topic(REGION, ATTACKER), payload).value == 0
    rows = wait_for(
        lambda: (rs := audit_rows(db, ATTACKER))[before:] and rs[before:], "the audit row"
    )
    assert len(rows) == 1
    assert peer.count(topics.response_topic(REGION, ATTACKER)) == answers  # no answer
    return rows[0].outcome


def answered(region: TestRegion, peer: Peer, ts: TerminalSession, lines) -> str:
    rt = topics.response_topic(REGION, ATTACKER)
    n = peer.count(rt)
    sq = ts.seal_query(os.urandom(16), dk_of(lines), time.time())
    assert peer.publish(topics.query_topic(REGION, ATTACKER), sq.payload).value == 0
    payload = peer.wait_messages(rt, n + 1)[-1]
    return ts.open_response(payload)[1].outcome


def honest_answered(region: TestRegion) -> None:
    with QueryClient(ClientConfig.load(region.terminal_toml(HONEST))) as qc:
        assert qc.wait_connected(30)
        assert qc.query(dk_of(region.listed[0]), timeout=10).outcome == "POSSIBLE_MATCH"
        assert qc.query(dk_of(region.unlisted[0]), timeout=10).outcome == "NO_MATCH"


def test_a_ten_year_ticket_is_refused(region, peer):
    ts = session(region, lifetime=3650 * DAY)
    q = ts.seal_query(os.urandom(16), dk_of(region.unlisted[1]), time.time())
    assert refused(region, peer, q.payload) == "REFUSED:lifetime"
    assert answered(region, peer, session(region), region.unlisted[1]) == "NO_MATCH"
    honest_answered(region)


def test_a_ticket_issued_in_the_future_is_refused(region, peer):
    ts = session(region, now=time.time() + 3600)  # the ticket claims an hour from now
    q = ts.seal_query(os.urandom(16), dk_of(region.unlisted[2]), time.time())
    assert refused(region, peer, q.payload) == "REFUSED:future"
    honest_answered(region)


def _write_keys(region: TestRegion, old: Ed25519PrivateKey, not_after: datetime) -> None:
    """terminals.json with a second key for kiosk-002 valid until ``not_after`` (a
    rotation's grace), written atomically; waits until the regional reloaded it."""
    before = region.regional.health().get("terminals_reloads", 0)
    path = region.broker_dir / "terminals.json"
    data = json.loads(path.read_text())
    entry = {
        "ed25519": base64.b64encode(old.public_key().public_bytes_raw()).decode(),
        "not_after": not_after.isoformat(),
    }
    keys_ = [k for k in data["terminals"][ATTACKER]["keys"] if k["ed25519"] != entry["ed25519"]]
    data["terminals"][ATTACKER]["keys"] = [*keys_, entry]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    wait_for(
        lambda: region.regional.health().get("terminals_reloads", 0) > before,
        "the regional to reload terminals.json",
    )


def test_a_session_of_a_key_whose_grace_ended_is_refused_at_its_next_query(region, peer):
    """The old key's grace ends while its session is cached; the key set itself does not
    change (only its not_after), so nothing forgets the session: the per-query recheck
    refuses it (``key_retired``), and a session of the current key is still answered."""
    old = Ed25519PrivateKey.generate()
    _write_keys(region, old, datetime.now(UTC) + timedelta(days=1))
    ts = session(region, key=old)
    assert answered(region, peer, ts, region.listed[2]) == "POSSIBLE_MATCH"  # in its grace
    _write_keys(region, old, datetime.now(UTC) - timedelta(days=300))  # grace long over
    q = ts.seal_query(os.urandom(16), dk_of(region.unlisted[3]), time.time())
    assert refused(region, peer, q.payload) == "REFUSED:key_retired"
    assert answered(region, peer, session(region), region.unlisted[3]) == "NO_MATCH"
    honest_answered(region)
