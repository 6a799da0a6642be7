"""A provisioned region on disk and its broker, run from the generated mosquitto.conf."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto, free_port

from .helpers import Peer, provision


@dataclass
class Region:
    root: Path
    registry: Path
    passphrase: Path
    bundles: dict[str, Path]
    broker_dir: Path
    port: int

    def cli(self, *argv: str) -> int:
        return provision(self.registry, *argv, passphrase=self.passphrase)

    def regional(self) -> Peer:
        d = self.broker_dir
        return Peer(self.port, d / "ca.crt", d / "regional.crt", d / "regional.key", "regional")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the user 'mosquitto' can traverse (pytest's tmp_path is 0700 for root),
    since the generated broker config drops to that user as production does."""
    d = Path(tempfile.mkdtemp(prefix="ft-provision-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def region(workdir: Path) -> Region:
    """init -> add-terminal x2 -> broker-config, exactly as the README tells a technician."""
    pw = workdir / "passphrase.txt"
    pw.write_text("correct horse battery staple\n")
    reg = workdir / "registry"
    port = free_port()
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 0
    bundles = {}
    for tid in ("kiosk-001", "kiosk-002"):
        bundles[tid] = workdir / "bundles" / tid
        assert provision(reg, "add-terminal", tid, "--out", str(bundles[tid]), passphrase=pw) == 0
    broker = workdir / "broker"
    assert (
        provision(reg, "broker-config", "--out", str(broker), "--port", str(port), passphrase=pw)
        == 0
    )
    return Region(workdir, reg, pw, bundles, broker, port)


@pytest.fixture
def broker(region: Region) -> Iterator[Mosquitto]:
    """Mosquitto run as ``mosquitto -c BROKER/mosquitto.conf`` (the file as generated)."""
    conf = (region.broker_dir / "mosquitto.conf").read_text()
    m = Mosquitto(region.broker_dir, port=region.port, conf_text=conf)
    m.start()
    try:
        yield m
    finally:
        m.stop()
