"""The shared local region (three terminals, a synthetic list, its Mosquitto from the
generated mTLS + ACL config) and its regional processes, for the tests of one module.

``region.start_regional()`` returns ``(process, health_file)`` once that process is ready
(the broker granted its subscription: :mod:`host_tools.localregion`'s one readiness rule).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from host_tools.mosquitto import Mosquitto
from tests.support.localregion import FIELDTERM, TestRegion

__all__ = ["FIELDTERM", "TERMINALS", "WAIT", "Region", "wait_for"]

Region = TestRegion
TERMINALS = ("kiosk-001", "kiosk-002", "kiosk-003")
WAIT = 20.0  # upper bound of every wait (never a timing assertion)


def wait_for(pred: Callable[[], Any], what: str, limit: float = WAIT) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    d = tmp_path_factory.mktemp("regional")
    with TestRegion(d, terminals=TERMINALS, records=2000, seed=7) as r:
        r.provision().generate_list()
        yield r


@pytest.fixture(scope="module")
def broker(region: TestRegion) -> Mosquitto:
    return region.start_broker()
