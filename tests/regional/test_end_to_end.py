"""Sealed queries end to end: real Mosquitto (mTLS + the generated ACL), real crypto, a
synthetic SLTD list, two `fieldterm regional` processes, the real query client."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.mrz import parse
from firmware.protocol import topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.session import TerminalSession
from tests.provision.helpers import Peer
from tests.support.regional_audit import audit_db, audit_rows, wait_rows

from .conftest import FIELDTERM, WAIT, Region, wait_for

pytestmark = pytest.mark.timeout(240)


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


@pytest.fixture(scope="module")
def regionals(region: Region, broker):
    region.start_regional()
    region.start_regional()
    yield region
    region.stop_all()


@pytest.fixture(scope="module")
def client(regionals: Region):
    with QueryClient(ClientConfig.load(regionals.terminal_toml("kiosk-001"))) as qc:
        assert qc.wait_connected(WAIT)
        yield qc


def refusals(region: Region) -> dict[str, int]:
    total: dict[str, int] = {}
    for _, h in region.procs:
        for k, v in region.health(h).get("refusals", {}).items():
            total[k] = total.get(k, 0) + v
    return total


def test_listed_gets_possible_match_with_details_unlisted_no_match(regionals, client):
    hit = client.query(dk_of(regionals.listed[0]), timeout=10)
    assert hit.outcome == "POSSIBLE_MATCH", regionals.logs()
    assert hit.record is not None
    assert hit.record["status"] in {"STOLEN_BLANK", "STOLEN", "LOST", "REVOKED", "INVALIDATED"}
    assert hit.record["reporting_country"] and hit.record["reference"]
    assert hit.list_version is not None and hit.list_version >= 1
    miss = client.query(dk_of(regionals.unlisted[0]), timeout=10)
    assert (miss.outcome, miss.record) == ("NO_MATCH", None)
    assert miss.query_id != hit.query_id


def test_pipelined_queries_all_answered_and_audit_holds_no_numbers(regionals, client):
    docs = [*regionals.listed[:10], *regionals.unlisted[:10]]
    got: dict[bytes, Verdict] = {}
    done = threading.Condition()

    def cb(v: Verdict) -> None:
        with done:
            got[v.query_id] = v
            done.notify_all()

    ids = [os.urandom(16) for _ in docs]
    for qid, lines in zip(ids, docs, strict=True):
        client.submit(qid, dk_of(lines), cb, timeout=10)
    with done:
        assert done.wait_for(lambda: len(got) == len(ids), timeout=WAIT)
    outcomes = [got[q].outcome for q in ids]
    assert outcomes == ["POSSIBLE_MATCH"] * 10 + ["NO_MATCH"] * 10
    # both processes took a share of the load (shared subscription)
    answered = wait_for(
        lambda: (
            [h.get("answered", 0) for h in (regionals.health(p) for _, p in regionals.procs)]
            if all(regionals.health(p).get("answered", 0) > 0 for _, p in regionals.procs)
            else None
        ),
        "both regional processes answering",
    )
    assert len(answered) == 2 and min(answered) > 0
    # the audit trail has keyed hashes, never a document number
    audit = regionals.broker_dir / "regional-audit.sqlite"
    numbers = {dk_of(lines).number for lines in docs}

    def rows() -> list[tuple[str, str, str]]:
        with sqlite3.connect(audit) as db:
            return db.execute("SELECT terminal, dkh, outcome FROM audit").fetchall()

    wait_for(lambda: len(rows()) >= 20, "audit rows")
    dump = "\n".join(map(str, rows())) + audit.read_bytes().hex()
    assert not any(n in dump or n.encode().hex() in dump for n in numbers)
    assert all(len(dkh) == 16 for t, dkh, o in rows() if not o.startswith("REFUSED"))


def _raw_peer(region: Region, tid: str) -> Peer:
    peer = Peer.from_bundle(region.port, region.bundles[tid], f"raw-{tid}").connect()
    peer.subscribe(topics.response_topic("central", tid))
    return peer


def _session(region: Region, tid: str, **override) -> TerminalSession:
    cfg = ClientConfig.load(region.terminal_toml(tid))
    from firmware.protocol import keys  # noqa: PLC0415

    params = {
        "region": "central",
        "terminal_id": tid,
        "identity_key": keys.load_ed25519_private(cfg.identity_key),
        "regional_kem_public": keys.load_x25519_public(cfg.regional_kem_public),
        "now": __import__("time").time(),
    }
    params.update(override)
    return TerminalSession.new(**params)


def _expect_refused(region: Region, peer: Peer, payload: bytes, reason_hint: str | None = None):
    """Publish, wait until a regional counts one more refusal, and check no answer came."""
    rtopic = topics.response_topic("central", "kiosk-002")
    before = sum(refusals(region).values())
    answers = peer.count(rtopic)
    assert peer.publish(topics.query_topic("central", "kiosk-002"), payload).value == 0
    wait_for(lambda: sum(refusals(region).values()) > before, "the refusal in a health file")
    assert peer.count(rtopic) == answers
    if reason_hint is not None:
        assert any(reason_hint in k for k in refusals(region)), refusals(region)


def test_tampered_replayed_and_foreign_keyed_queries_get_no_answer(regionals):
    peer = _raw_peer(regionals, "kiosk-002")
    rtopic = topics.response_topic("central", "kiosk-002")
    try:
        s = _session(regionals, "kiosk-002")
        now = __import__("time").time()
        good = s.seal_query(os.urandom(16), dk_of(regionals.unlisted[1]), now).payload
        assert peer.publish(topics.query_topic("central", "kiosk-002"), good).value == 0
        assert len(peer.wait_messages(rtopic, 1)) == 1  # the genuine one is answered
        # replay: byte-identical re-publish (whichever process receives it)
        for _ in range(3):
            _expect_refused(regionals, peer, good, "replay")
        # tampered: one flipped byte anywhere in the sealed query
        for pos in (len(good) // 2, len(good) - 1):
            bad = bytearray(s.seal_query(os.urandom(16), dk_of(regionals.unlisted[2]), now).payload)
            bad[pos] ^= 0x01
            _expect_refused(regionals, peer, bytes(bad))
        # a ticket signed by a key the regional has not pinned for kiosk-002
        rogue = _session(regionals, "kiosk-002", identity_key=Ed25519PrivateKey.generate())
        _expect_refused(
            regionals,
            peer,
            rogue.seal_query(os.urandom(16), dk_of(regionals.listed[1]), now).payload,
        )
        # a session sealed to the wrong regional KEM key
        wrong = _session(
            regionals, "kiosk-002", regional_kem_public=X25519PrivateKey.generate().public_key()
        )
        _expect_refused(
            regionals,
            peer,
            wrong.seal_query(os.urandom(16), dk_of(regionals.listed[1]), now).payload,
        )
        assert peer.count(rtopic) == 1
    finally:
        peer.close()


def test_query_cli_prints_verdicts_in_input_order(regionals):
    lines = [
        json.dumps(regionals.unlisted[3]),
        json.dumps(regionals.listed[3]),
        json.dumps(["P<UTOBAD"]),
        "not json",
        json.dumps(regionals.listed[4]),
    ]
    out = subprocess.run(
        [FIELDTERM, "query", "--config", str(regionals.terminal_toml("kiosk-001")), "--mrz-jsonl"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["outcome"] for r in rows] == [
        "NO_MATCH",
        "POSSIBLE_MATCH",
        "RESCAN",
        "RESCAN",
        "POSSIBLE_MATCH",
    ]
    assert rows[1]["record"]["reference"] and len(rows[1]["query_id"]) == 32
    assert rows[3]["errors"] == ["structure:input"] and rows[2]["errors"]
    for lines_ in (regionals.listed[3], regionals.listed[4]):  # nothing of the MRZ printed
        assert dk_of(lines_).number not in out.stdout


def test_broker_restart_is_survived(regionals, broker, client):
    assert client.query(dk_of(regionals.unlisted[5]), timeout=10).outcome == "NO_MATCH"
    broker.stop()
    wait_for(lambda: not client.connected(), "the client to notice the broker is gone")
    broker.start()
    assert client.wait_connected(WAIT)

    def answered() -> bool:
        return client.query(dk_of(regionals.listed[5]), timeout=2).outcome == "POSSIBLE_MATCH"

    wait_for(answered, "an answer after the broker restart", 40.0)
    for _, h in regionals.procs:
        wait_for(lambda h=h: regionals.health(h).get("connects", 0) >= 2, "regional reconnect")


def _send_all(qc: QueryClient, docs: list[list[str]], timeout: float) -> list[Verdict]:
    """Submit every query at once; their verdicts in the order sent."""
    got: dict[bytes, Verdict] = {}
    done = threading.Event()
    ids = [os.urandom(16) for _ in docs]

    def on_verdict(v: Verdict) -> None:
        got[v.query_id] = v
        if len(got) == len(ids):
            done.set()

    for qid, lines in zip(ids, docs, strict=True):
        qc.submit(qid, dk_of(lines), on_verdict, timeout=timeout)
    assert done.wait(timeout + WAIT), "the client gave no verdict"
    return [got[q] for q in ids]


def test_revoked_terminal_gets_no_answers_without_restart(regionals):
    """Revocation is proven by the regional's refusals (counted and audited with the reason
    ``unknown_terminal``, one per query sent), not by the terminal timing out."""
    db = audit_db(regionals.broker_dir / "regional.toml")
    cfg = ClientConfig.load(regionals.terminal_toml("kiosk-003"))
    with QueryClient(cfg) as qc:
        assert qc.wait_connected(WAIT)
        first = qc.query(dk_of(regionals.unlisted[6]), timeout=10)
        assert first.outcome == "NO_MATCH"
        wait_for(
            lambda: (
                (first.query_id, "NO_MATCH")
                in {(r.query_id, r.outcome) for r in audit_rows(db, "kiosk-003")}
            ),
            "kiosk-003's answer in the audit trail",
        )
        before = len(audit_rows(db, "kiosk-003"))
        refused_before = refusals(regionals).get("unknown_terminal", 0)
        terminals = [regionals.health(h)["terminals"] for _, h in regionals.procs]
        path = regionals.broker_dir / "terminals.json"
        data = json.loads(path.read_text())
        data["terminals"]["kiosk-003"]["revoked"] = True
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        pids = [p.pid for p, _ in regionals.procs]
        wait_for(
            lambda: (
                [regionals.health(h).get("terminals") for _, h in regionals.procs]
                == [n - 1 for n in terminals]
            ),
            "every regional to drop kiosk-003 from its terminals",
        )
        sent = [*regionals.listed[6:9], regionals.unlisted[7]]
        verdicts = _send_all(qc, sent, timeout=2.0)
        rows = wait_rows(db, "kiosk-003", before + len(sent))[before:]
        assert [r.outcome for r in rows] == ["REFUSED:unknown_terminal"] * len(sent)
        assert all(r.query_id is None for r in rows)  # refused before the query was opened
        wait_for(
            lambda: refusals(regionals).get("unknown_terminal", 0) >= refused_before + len(sent),
            "the refusals in the regionals' health",
        )
        assert refusals(regionals)["unknown_terminal"] == refused_before + len(sent)
        assert [(v.outcome, v.record) for v in verdicts] == [("TIMEOUT", None)] * len(sent)
        answered = {r.query_id for r in audit_rows(db)}
        assert not answered & {v.query_id for v in verdicts}
        assert [p.pid for p, _ in regionals.procs] == pids
        assert all(p.poll() is None for p, _ in regionals.procs)  # not restarted
    # another terminal is still served, and its answer audited under its query id
    with QueryClient(ClientConfig.load(regionals.terminal_toml("kiosk-001"))) as ok:
        assert ok.wait_connected(WAIT)
        hit = ok.query(dk_of(regionals.listed[9]), timeout=10)
        assert hit.outcome == "POSSIBLE_MATCH"
        wait_for(
            lambda: any(
                r.query_id == hit.query_id and r.outcome == "POSSIBLE_MATCH"
                for r in audit_rows(db, "kiosk-001")
            ),
            "kiosk-001's answer in the audit trail",
        )
