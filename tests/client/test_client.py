"""The query client: config errors, timeouts by injected clock, late answers, and a real
broker with no regional service (every query ends as TIMEOUT, never NO_MATCH)."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.errors import ConfigError
from firmware.mrz import parse
from firmware.protocol import keys, topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.session import RegionalSessions
from tests.regional.conftest import WAIT
from tests.support.localregion import FIELDTERM
from tests.support.localregion import TestRegion as Region

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    with Region(
        tmp_path_factory.mktemp("client"), terminals=("kiosk-001", "kiosk-002", "kiosk-003")
    ) as r:
        yield r.provision().generate_list()


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_config_loads_paths_relative_to_the_file(region: Region):
    cfg = ClientConfig.load(region.terminal_toml("kiosk-001"))
    assert (cfg.terminal_id, cfg.region, cfg.query_timeout) == ("kiosk-001", "central", 2.0)
    assert cfg.query_timeout_max == 10.0  # the adaptive timeout's default ceiling
    assert cfg.identity_key.is_absolute() and cfg.identity_key.is_file()
    assert cfg.broker.port == region.port and cfg.broker.ca.is_file()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("query_timeout = 2.0", "query_timeout = 'soon'"), "protocol.query_timeout"),
        (
            ('identity_key = "identity.key"', 'identity_key = "missing.key"'),
            "protocol.identity_key",
        ),
        (('id = "kiosk-001"', 'id = "Kiosk 1"'), "terminal.id"),
        (("keepalive = 30", "keepalive = 30\nkeepalivee = 3"), "broker.keepalivee"),
        (
            ("query_timeout = 2.0", "query_timeout = 2.0\nquery_timeout_max = 1.0"),
            "protocol.query_timeout_max",
        ),
    ],
)
def test_config_errors_name_the_field(region: Region, tmp_path, edit, field):
    src = region.terminal_toml("kiosk-001")
    text = src.read_text()
    assert edit[0] in text
    bad = src.with_name("bad.toml")
    bad.write_text(text.replace(edit[0], edit[1]))
    try:
        with pytest.raises(ConfigError) as e:
            ClientConfig.load(bad)
        assert e.value.field == field and str(bad) in str(e.value)
    finally:
        bad.unlink()


def test_deadline_gives_timeout_never_no_match_and_late_answer_is_marked(region: Region):
    """Injected clock, link never started: only the sweeper decides."""
    clock = FakeClock()
    late: list[Verdict] = []
    qc = QueryClient(
        ClientConfig.load(region.terminal_toml("kiosk-001")),
        clock=clock,
        timer=clock,
        on_late_verdict=late.append,
    )
    try:
        qc._session(clock())
        got: list[Verdict] = []
        qid = os.urandom(16)
        qc.submit(qid, dk_of(region.unlisted[0]), got.append, timeout=2.0)
        clock.t += 1.999
        assert qc.sweep() == 0 and got == []
        clock.t += 0.002
        assert qc.sweep() == 1
        assert [(v.query_id, v.outcome, v.record) for v in got] == [(qid, "TIMEOUT", None)]
        assert got[0].reason == "no broker link" and got[0].latency_s == pytest.approx(2.001)
        assert qc.sweep() == 0 and len(got) == 1  # exactly one verdict
        # a re-submit with the same id extends the deadline; the old one no longer fires
        qc.submit(qid, dk_of(region.unlisted[0]), got.append, timeout=5.0)
        clock.t += 3.0
        assert qc.sweep() == 0
    finally:
        qc.close()


def test_late_answer_goes_to_on_late_verdict(region: Region):
    """A response that comes after the TIMEOUT is delivered once, marked late."""
    clock = FakeClock()
    late: list[Verdict] = []
    cfg = ClientConfig.load(region.terminal_toml("kiosk-001"))
    qc = QueryClient(cfg, clock=clock, timer=clock, on_late_verdict=late.append)
    sent: list[bytes] = []
    qc.link.publish = lambda topic, payload, qos=1, retain=False: sent.append(payload)  # type: ignore[method-assign]
    try:
        got: list[Verdict] = []
        qid = os.urandom(16)
        qc.submit(qid, dk_of(region.listed[0]), got.append, timeout=1.0)
        term = json.loads((region.broker_dir / "terminals.json").read_text())["terminals"]
        pub = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(term["kiosk-001"]["keys"][0]["ed25519"])
        )
        rs = RegionalSessions(
            region="central",
            kem_private=keys.load_x25519_private(region.broker_dir / "regional-kem.key"),
            terminal_keys=lambda tid: [pub] if tid == "kiosk-001" else [],
        )
        q = rs.open_query("kiosk-001", sent[0], clock())
        answer = rs.seal_response(q, Response(q.query_id, "NO_MATCH", list_version=4))
        clock.t += 1.5
        assert qc.sweep() == 1 and got[0].outcome == "TIMEOUT"
        qc._on_message(topics.response_topic("central", "kiosk-001"), answer)
        assert [(v.outcome, v.late, v.list_version) for v in late] == [("NO_MATCH", True, 4)]
        qc._on_message(topics.response_topic("central", "kiosk-001"), answer)  # duplicate
        assert len(late) == 1 and len(got) == 1
    finally:
        qc.close()


def test_no_regional_running_gives_timeout(region: Region, tmp_path):
    from tests.support.broker import Mosquitto  # noqa: PLC0415

    conf = (region.broker_dir / "mosquitto.conf").read_text()
    with Mosquitto(region.broker_dir, port=region.port, conf_text=conf):
        with QueryClient(ClientConfig.load(region.terminal_toml("kiosk-001"))) as qc:
            assert qc.wait_connected(WAIT)
            v = qc.query(dk_of(region.listed[0]), timeout=0.5)
            assert (v.outcome, v.record, v.reason) == ("TIMEOUT", None, "no answer in time")
        lines = [json.dumps(region.unlisted[0]), json.dumps(["bad"])]
        (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
        config = ["--config", str(region.terminal_toml("kiosk-001")), "--timeout", "0.5"]
        runs = {
            "stdin by default": ([], "\n".join(lines) + "\n"),
            "--mrz-jsonl FILE": (["--mrz-jsonl", str(tmp_path / "docs.jsonl")], ""),
            "--mrz-jsonl -": (["--mrz-jsonl", "-"], "\n".join(lines) + "\n"),
        }
        results = {}
        for what, (extra, stdin) in runs.items():
            results[what] = subprocess.run(
                [FIELDTERM, "query", *config, *extra],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    for what, out in results.items():
        assert out.returncode == 3, (what, out.stderr)
        rows = [json.loads(x) for x in out.stdout.splitlines()]
        assert [(r["outcome"], r["verdict"]) for r in rows] == [
            ("TIMEOUT", "UNKNOWN"),
            ("RESCAN", "RESCAN"),
        ], what


def test_query_input_file_errors_and_help(tmp_path):
    missing = tmp_path / "nope.jsonl"
    r = subprocess.run(
        [FIELDTERM, "query", "--config", str(tmp_path / "t.toml"), "--mrz-jsonl", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "--mrz-jsonl" in r.stderr and str(missing) in r.stderr
    r = subprocess.run(
        [FIELDTERM, "query", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--mrz-jsonl [FILE]" in r.stdout and "standard input" in r.stdout
