"""A provisioned region on disk and its broker, run from the generated mosquitto.conf:
the shared :class:`~host_tools.localregion.LocalRegion`, provisioned in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.mosquitto import Mosquitto
from tests.support.localregion import TestRegion

from .helpers import Peer


class Region(TestRegion):
    """The provisioning tests' view of the local region."""

    def regional_peer(self) -> Peer:
        """A raw MQTT peer with the regional service's identity."""
        d = self.broker_dir
        return Peer(self.port, d / "ca.crt", d / "regional.crt", d / "regional.key", "regional")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory the user 'mosquitto' can traverse (tests/conftest.py opens pytest's
    temporary directories to it), since the generated broker config drops to that user."""
    return tmp_path


@pytest.fixture
def region(workdir: Path) -> Iterator[Region]:
    """init -> add-terminal x2 -> broker-config, exactly as the README tells a technician."""
    with Region(
        workdir / "region", terminals=("kiosk-001", "kiosk-002"), records=2000, seed=5,
        sample_size=3,
    ) as r:  # fmt: skip
        yield r.provision()


@pytest.fixture
def broker(region: Region) -> Mosquitto:
    """Mosquitto run as ``mosquitto -c BROKER/mosquitto.conf`` (the file as generated)."""
    return region.start_broker()
