"""The agent core's ports against the classes that fill them: the real ones the agent
wires in and the recording fakes (tests/agent/fakes.py) tests/agent/test_core.py drives the core with. A
method renamed or a parameter changed on either side fails here, not silently in a fake."""

from __future__ import annotations

import inspect

import pytest

from firmware.agent import ports
from firmware.agent.officer import OfficerSignals
from firmware.agent.status import StatusPublisher
from firmware.client.client import QueryClient
from firmware.offline.answerer import OfflineAnswerer
from tests.agent import fakes

PORTS = {
    ports.QueryPort: [QueryClient, fakes.FakeQuery],
    ports.SignalsPort: [OfficerSignals, fakes.FakeSignals],
    ports.StatusPort: [StatusPublisher],
    ports.OfflinePort: [OfflineAnswerer],
}


def _methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(protocol).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


@pytest.mark.parametrize(
    ("protocol", "impl"),
    [(p, c) for p, impls in PORTS.items() for c in impls],
    ids=lambda x: x.__name__,
)
def test_implementation_accepts_every_call_the_port_allows(protocol, impl):
    methods = _methods(protocol)
    assert methods, protocol
    for name, sig in methods.items():
        fn = getattr(impl, name, None)
        assert callable(fn), f"{impl.__name__} lacks {name}()"
        params = list(sig.parameters)[1:]  # without self
        real = inspect.signature(fn)
        # the core calls positionally; the names must match too, as for a typed Protocol
        real.bind(None, *params)
        real.bind(None, **{p: p for p in params})


def test_a_drifted_fake_is_caught():
    class Drifted:
        def submit(self, qid, key):  # lost its on_verdict
            pass

    fn = inspect.signature(Drifted.submit)
    with pytest.raises(TypeError):
        fn.bind(None, *list(inspect.signature(ports.QueryPort.submit).parameters)[1:])


def test_core_fake_verdict_is_the_real_one():
    from firmware.client.client import Verdict  # noqa: PLC0415

    assert fakes.Verdict is Verdict
