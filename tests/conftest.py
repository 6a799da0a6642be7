"""Shared fixtures: a throwaway PKI and a real Mosquitto with mutual TLS on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.support.broker import Mosquitto
from tests.support.pki import TestPki, make_test_pki


@pytest.fixture
def test_pki(tmp_path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def mtls_broker(tmp_path, test_pki):
    """A Mosquitto requiring client certificates; no ACL (tests that need ACLs pass their own)."""
    with Mosquitto(tmp_path / "broker", tls=test_pki.broker_tls) as broker:
        yield broker


@pytest.fixture(scope="session", autouse=True)
def _broker_can_traverse_basetemp(tmp_path_factory):
    """Mosquitto started as root drops to the user 'mosquitto' (as in production), which must
    traverse to configs under pytest's temporary directories; those are created 0700.
    Session-scoped, so module-scoped regions under ``tmp_path_factory`` work too."""
    base = tmp_path_factory.getbasetemp()
    for d in (base.parent, base):
        d.chmod(0o711)


@pytest.fixture(autouse=True)
def _broker_can_traverse_tmp(request):
    if "tmp_path" in request.fixturenames:
        request.getfixturevalue("tmp_path").chmod(0o711)
