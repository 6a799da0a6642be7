"""Why a kiosk is offline is logged at WARNING, the default level (issue 14): a broker that
is stopped (refused), a broker that refuses the kiosk's certificate, a broker certificate
the kiosk does not trust, a name that does not resolve; the reconnect that ends an outage;
and a long outage is a few lines, not one per attempt.

Real Mosquitto with mutual TLS (the shared ``mtls_broker`` fixture); the records are the
``firmware.transport.mqtt`` logger's, as the agent's default handler would print them.
"""

from __future__ import annotations

import logging
import time

import pytest

from firmware.transport.mqtt import BrokerConfig, ConnectFailures, MqttLink
from tests.support.broker import free_port
from tests.support.pki import make_test_pki

pytestmark = pytest.mark.timeout(90)
LOGGER = "firmware.transport.mqtt"
WAIT = 20.0


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def wait_until(cond, what: str, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def link_for(cfg: BrokerConfig) -> MqttLink:
    return MqttLink(cfg, "kiosk-001", on_message=lambda t, p: None, subscriptions=("t/+",))


def test_stopped_broker_is_refused_logged_once_then_the_reconnect(
    mtls_broker, test_pki, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cert, key = test_pki.client("kiosk-001")
    link = link_for(BrokerConfig("127.0.0.1", mtls_broker.port, test_pki.cafile, cert, key))
    with link:
        assert link.wait_ready(WAIT)
        assert warnings(caplog) == []  # a first connect that works is not a warning
        mtls_broker.stop()
        wait_until(lambda: link.failures.total >= 3, "three refused reconnects")
        lines = warnings(caplog)
        assert any("link lost" in x for x in lines), lines
        refused = [x for x in lines if "refused" in x]
        # the first refusal at once, the next two folded in (one line a minute at most)
        assert len(refused) == 1, lines
        assert f"127.0.0.1:{mtls_broker.port} refused" in refused[0]
        assert "is the broker running" in refused[0]
        mtls_broker.start()
        assert link.wait_ready(WAIT)
    back = [x for x in warnings(caplog) if "connected to" in x]
    assert len(back) == 1 and "(connection 2) after" in back[0], back
    assert "s offline" in back[0] and "failed attempts (last: connection to" in back[0]


def test_a_certificate_the_broker_refuses_is_logged_with_the_reason(
    mtls_broker, test_pki, tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    stranger = make_test_pki(tmp_path / "other-ca")  # a kiosk identity from another CA
    cert, key = stranger.client("kiosk-001")
    link = link_for(BrokerConfig("127.0.0.1", mtls_broker.port, test_pki.cafile, cert, key))
    with link:
        wait_until(lambda: link.failures.total >= 1, "a refused connect")
        assert not link.connected.is_set()
    lines = warnings(caplog)
    assert lines, "nothing logged at WARNING"
    # TLS 1.3 reports the refusal after the handshake (the broker's alert on first read),
    # TLS 1.2 in it; either way the line says where and why, and what to check.
    assert any(
        ("TLS handshake with" in x or "closed the connection before CONNACK" in x)
        and f"127.0.0.1:{mtls_broker.port}" in x
        and "certificate" in x
        for x in lines
    ), lines


def test_an_untrusted_broker_certificate_names_the_verify_error(
    mtls_broker, test_pki, tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cert, key = test_pki.client("kiosk-001")
    wrong_ca = make_test_pki(tmp_path / "wrong-ca").cafile
    link = link_for(BrokerConfig("127.0.0.1", mtls_broker.port, wrong_ca, cert, key))
    with link:
        wait_until(lambda: link.failures.total >= 1, "a failed handshake")
    lines = warnings(caplog)
    assert any(
        "the broker certificate was not accepted" in x and "unable to get local issuer" in x
        for x in lines
    ), lines


def test_a_name_that_does_not_resolve_is_a_dns_failure(test_pki, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cert, key = test_pki.client("kiosk-001")
    link = link_for(BrokerConfig("broker.invalid", free_port(), test_pki.cafile, cert, key))
    with link:
        wait_until(lambda: link.failures.total >= 1, "a failed lookup")
    assert any("DNS lookup of 'broker.invalid' failed" in x for x in warnings(caplog))


def test_failures_are_rate_limited_by_reason_and_interval(caplog) -> None:
    """Injected timer: the first line at once, repeats folded for ``interval``, a new
    reason at once; the count of folded attempts is in the next line."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    now = [0.0]
    f = ConnectFailures("kiosk-001", interval=60.0, timer=lambda: now[0])
    for _ in range(30):  # 30 refusals 2 s apart: one line
        f.failed("connection refused")
        now[0] += 2.0
    assert len(warnings(caplog)) == 1
    f.failed("connection refused")  # t = 60: the interval has passed
    assert warnings(caplog)[-1].endswith("(29 more failed attempts since the last line)")
    f.failed("connect timed out")  # a new reason: at once
    assert len(warnings(caplog)) == 3 and "timed out" in warnings(caplog)[-1]
    f.failed("connection refused")  # two reasons alternating: each limited on its own
    f.failed("connect timed out")
    assert len(warnings(caplog)) == 3
    assert f.total == 34 and f.logged == 3
    now[0] += 10.0
    assert f.succeeded() == " after 70.0 s offline, 34 failed attempts (last: connect timed out)"
    assert f.succeeded() == ""  # the outage is over
