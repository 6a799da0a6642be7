"""The fakes tests drive the agent with keep the real ports' interfaces (signature for
signature) and behave as the real classes do on what the agent relies on: one suite, run
against the fake and the real class alike."""

from __future__ import annotations

import os
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.agent.officer import OfficerSignals
from firmware.agent.states import View
from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.protocol.dockey import DocumentKey
from firmware.signals import render_screen
from firmware.signals.display import MockDisplay
from firmware.signals.mock import MockButton, MockPanel
from firmware.transport.mqtt import BrokerConfig
from host_tools.regional.service import RegionalService
from tests.agent import fakes as agent_fakes
from tests.e2e import fakes as e2e_fakes
from tests.support.contract import interface_drift

#: What the agent calls on its query client (firmware/agent/agent.py and core.py).
CLIENT_PORT = ("start", "connected", "submit", "publish", "close")
#: What the agent core calls on its signals (the officer's LEDs, buzzer, display, button).
SIGNALS_PORT = ("show", "update", "acknowledged", "off")
WAIT = 10.0


# -- signatures ------------------------------------------------------------------------------
def test_e2e_query_client_fake_has_the_real_clients_interface():
    assert interface_drift(e2e_fakes.FakeQueryClient, QueryClient, CLIENT_PORT) == []


def test_e2e_regional_fake_has_the_real_services_interface():
    assert interface_drift(e2e_fakes.FakeRegional, RegionalService, ("start", "stop")) == []


def test_core_fakes_have_the_real_ports_interfaces():
    assert (
        interface_drift(agent_fakes.FakeQuery, QueryClient, ("submit",), test_only={"answer"}) == []
    )
    assert interface_drift(agent_fakes.FakeSignals, OfficerSignals, SIGNALS_PORT) == []


def test_fakes_deliver_the_real_verdict_type():
    assert e2e_fakes.Verdict is Verdict and agent_fakes.Verdict is Verdict


def test_the_drift_check_sees_a_renamed_parameter_and_an_extra_method():
    class Real:
        def submit(self, query_id, dk, on_verdict, timeout=None): ...

    class Drifted:
        def submit(self, qid, dk, on_verdict): ...

        def extra(self): ...

    drift = interface_drift(Drifted, Real, ("submit", "close"))
    assert any("Drifted lacks the port method close()" in d for d in drift)
    assert any("Real lacks the port method close()" in d for d in drift)
    assert any("Drifted.submit(self, qid, dk, on_verdict) differs" in d for d in drift)
    assert any("Drifted.extra() is not on Real" in d for d in drift)


# -- behaviour: the signals port -----------------------------------------------------------
def _view(state: str, *, link_up: bool = True) -> View:
    return View(state, 0.0, 1, None, False, link_up, (), ())


def _fake_signals():
    sig = agent_fakes.FakeSignals()

    def press() -> None:
        sig.ack = True

    return sig, press, lambda: sig.shown[-1], lambda: sig.shown[-1] == "off"


def _real_signals():
    panel, display, button = MockPanel(), MockDisplay(), MockButton()
    sig = OfficerSignals(panel, display, button, render=render_screen)
    return sig, button.press, lambda: panel.state, lambda: panel.closed and display.closed


@pytest.mark.parametrize("make", [_fake_signals, _real_signals], ids=["fake", "real"])
def test_signals_port_contract(make):
    sig, press, showing, dark = make()
    sig.show(_view("idle", link_up=False), 0.0)
    assert showing() == "offline"  # an idle terminal without a link shows offline
    sig.show(_view("possible_match"), 1.0)
    sig.update(1.5)
    assert showing() == "possible_match"
    assert sig.acknowledged() is False
    press()
    assert sig.acknowledged() is True
    assert sig.acknowledged() is False  # one press, one acknowledgement
    sig.off()
    sig.off()  # idempotent
    assert dark()


# -- behaviour: the query client port ------------------------------------------------------
def _pem_keys(d):
    ident, kem = d / "identity.pem", d / "kem.pub.pem"
    ident.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    kem.write_bytes(
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return ident, kem


def _real_client(tmp_path, pki, broker, will, on_link):
    cert, key = pki.client("kiosk-001")
    ident, kem = _pem_keys(tmp_path)
    cfg = ClientConfig(
        terminal_id="kiosk-001",
        region="contract",
        broker=BrokerConfig("127.0.0.1", broker.port, pki.cafile, cert, key),
        identity_key=ident,
        regional_kem_public=kem,
        query_timeout=5.0,
    )
    return QueryClient(cfg, will=will, on_link=on_link)


def _fake_client(tmp_path, pki, broker, will, on_link):
    cert, key = pki.client("kiosk-001")
    return e2e_fakes.FakeQueryClient(
        port=broker.port, ca=pki.cafile, cert=cert, key=key, terminal="kiosk-001",
        region="contract", timeout=5.0, will=will, on_link=on_link,
    )  # fmt: skip


@pytest.mark.parametrize("make", [_fake_client, _real_client], ids=["fake", "real"])
def test_query_client_port_contract(make, tmp_path, test_pki, mtls_broker):
    """Link up reported once subscribed; an unanswered query gets exactly one TIMEOUT
    verdict, for its id, at its own deadline; close() takes the link down."""
    links: list[bool] = []
    up = threading.Event()

    def on_link(state: bool) -> None:
        links.append(state)
        if state:
            up.set()

    will = ("ft/v1/contract/status/kiosk-001", b"offline", 1, True)
    client = make(tmp_path, test_pki, mtls_broker, will, on_link)
    assert client.start() is client
    try:
        assert up.wait(WAIT) and client.connected()
        got: list[Verdict] = []
        done = threading.Event()

        def on_verdict(v: Verdict) -> None:
            got.append(v)
            done.set()

        qid = os.urandom(16)
        t0 = time.monotonic()
        client.submit(qid, DocumentKey("UTO", "P", "L898902C3"), on_verdict, timeout=0.5)
        assert done.wait(WAIT)
        assert time.monotonic() - t0 >= 0.5
        # a second query's verdict arrives after any duplicate of the first would have
        done.clear()
        client.submit(os.urandom(16), DocumentKey("UTO", "P", "AB1234567"), on_verdict, 0.5)
        assert done.wait(WAIT)
        first = [v for v in got if v.query_id == qid]
        assert len(first) == 1 and isinstance(first[0], Verdict)
        assert (first[0].outcome, first[0].record, first[0].reason) == (
            "TIMEOUT",
            None,
            "no answer in time",
        )
    finally:
        client.close()
    assert not client.connected()
    assert links[0] is True
