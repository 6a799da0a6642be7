"""The local region's one readiness rule, against the real parts.

Ready is the product's own evidence (the regional's SUBACK-time health report and its
READY=1 to systemd, the agent's events), never "the process is up" or a sleep.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from host_tools.localregion import LocalRegion, LocalRegionError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    d = tmp_path_factory.mktemp("region")
    d.chmod(0o711)
    with LocalRegion(d, terminals=("kiosk-001", "kiosk-002"), records=1000) as r:
        r.provision(desk=True).generate_list()
        yield r


def _query(region: LocalRegion, tid: str, docs: list[list[str]]) -> list[str]:
    out = region.tool.run(
        "query", "query", "--config", str(region.terminal_toml(tid)),
        "--mrz-jsonl", "--timeout", "5",
        timeout=60,
        input_text="".join(json.dumps(d) + "\n" for d in docs),
    )  # fmt: skip
    return [json.loads(x)["outcome"] for x in out.splitlines() if x.strip()]


def test_a_regional_is_not_ready_until_the_broker_grants_its_subscription(region):
    """With no broker the process runs and reports health, but not ready; once the broker
    is up the same process turns ready, and a query sent at that instant is answered."""
    reg = region.start_regional(wait=False)
    try:
        first = reg.wait_health(lambda h: "ready" in h, "a first health report")
        assert first["ready"] is False and first["connected"] is False
        assert reg.running() and not reg.is_ready()
        region.start_broker()
        reg.wait_ready()
        # No pause: ready means a query now cannot be dropped for want of a subscriber.
        assert _query(region, "kiosk-001", [region.listed[0], region.unlisted[0]]) == [
            "POSSIBLE_MATCH",
            "NO_MATCH",
        ]
        h = reg.wait_health(lambda h: h["answered"] >= 2, "the answers in its health report")
        assert h["answered"] == 2 and h["refusals"] == {}
    finally:
        reg.stop()


def test_ready_fails_at_once_when_the_process_exits(region, tmp_path):
    bad = {"FIELDTERM_REGIONAL__SLTD_DB": str(tmp_path / "missing" / "sltd.sqlite")}
    t0 = time.monotonic()
    with pytest.raises(LocalRegionError, match="process exited with") as err:
        region.start_regional(env=bad)
    assert time.monotonic() - t0 < 30  # the exit, not the 60 s bound, ended the wait
    assert "sltd" in str(err.value).lower()  # the log's tail says why


def test_regional_sends_ready_to_systemd_after_its_subscription(region, tmp_path):
    region.start_broker()
    addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(addr)
        sock.settimeout(30)
        reg = region.start_regional(env={"NOTIFY_SOCKET": addr}, wait=False)
        try:
            msg = sock.recv(4096).decode()
            assert "READY=1" in msg.splitlines()
            # READY=1 is sent after the health file was written as ready.
            assert reg.health().get("ready") is True and reg.health()["pid"] == reg.pid
            reg.stop()
            assert "STOPPING=1" in sock.recv(4096).decode().splitlines()
        finally:
            reg.stop()


def test_agent_is_ready_on_its_link_and_answers_the_first_scan(region):
    region.start_broker()
    if not any(r.running() for r in region.regionals):
        region.start_regional()
    agent = region.start_agent("kiosk-002")
    assert agent.ready_event["pid"] == agent.pid
    mark = agent.events.mark()
    agent.scanner.send(region.unlisted[1])
    verdict = agent.wait_event(lambda e: e["event"] == "verdict", "the verdict", mark)
    assert verdict["outcome"] == "NO_MATCH" and verdict["late"] is False
    assert agent.stop() == 0
    assert not agent.running()
