"""The shared local region (three terminals, a synthetic list, its Mosquitto from the
generated mTLS + ACL config) and its regional processes, for the tests of one module.

``region.start_regional()`` returns ``(process, health_file)`` once that process is ready
(the broker granted its subscription: :mod:`host_tools.localregion`'s one readiness rule).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from host_tools.localregion import LocalRegion
from host_tools.mosquitto import Mosquitto
from tests.support.localregion import InProcessFieldterm

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))
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


class Region(LocalRegion):
    """The tests' view of the local region."""

    @property
    def root(self) -> Path:
        return self.dir

    @property
    def bundles(self) -> dict[str, Path]:
        return {tid: self.bundle(tid) for tid in self.terminals}

    @property
    def procs(self) -> list[tuple[subprocess.Popen[bytes], Path]]:
        """The regional processes started since the last ``stop_all``, with health files."""
        return [(p.proc, p.health_file) for p in self.regionals if p.proc is not None]

    def start_regional(self, **kw: Any) -> tuple[subprocess.Popen[bytes], Path]:  # type: ignore[override]
        p = super().start_regional(**kw)
        assert p.proc is not None
        return p.proc, p.health_file

    @staticmethod
    def health(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def logs(self) -> str:
        return self.regional_logs()

    def stop_all(self) -> None:
        self.stop_regionals()


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[Region]:
    d = tmp_path_factory.mktemp("regional")
    d.chmod(0o711)
    with Region(d, terminals=TERMINALS, records=2000, seed=7, tool=InProcessFieldterm()) as r:
        r.provision().generate_list()
        yield r


@pytest.fixture(scope="module")
def broker(region: Region) -> Mosquitto:
    return region.start_broker()
