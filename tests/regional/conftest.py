"""A provisioned region, its Mosquitto (generated mTLS + ACL config), a synthetic SLTD list
and regional service processes, shared by the tests of one module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.provision.helpers import provision
from tests.support.broker import Mosquitto, free_port

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


@dataclass
class Region:
    root: Path
    broker_dir: Path
    port: int
    bundles: dict[str, Path]
    listed: list[list[str]]
    unlisted: list[list[str]]
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def terminal_toml(self, tid: str) -> Path:
        return self.bundles[tid] / "terminal.toml"

    def start_regional(self) -> tuple[subprocess.Popen[bytes], Path]:
        n = len(self.procs)
        health = self.root / f"health-{n}.json"
        log = (self.root / f"regional-{n}.log").open("wb")
        env = dict(os.environ, FIELDTERM_LOG_LEVEL="INFO")
        cmd = [FIELDTERM, "regional", "--config", str(self.broker_dir / "regional.toml")]
        proc = subprocess.Popen(
            [*cmd, "--health-file", str(health)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.procs.append((proc, health))
        wait_for(lambda: self.health(health).get("connected"), "regional health", 30.0)
        return proc, health

    @staticmethod
    def health(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.root.glob("regional-*.log"))

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


def _jsonl(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_region() -> Region:
    root = Path(tempfile.mkdtemp(prefix="ft-regional-", dir="/tmp"))
    os.chmod(root, 0o755)  # the broker drops to the user 'mosquitto', which must traverse
    pw = root / "passphrase.txt"
    pw.write_text("correct horse battery staple\n")
    reg, port = root / "registry", free_port()
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 0
    bundles = {}
    for tid in TERMINALS:
        bundles[tid] = root / "bundles" / tid
        assert provision(reg, "add-terminal", tid, "--out", str(bundles[tid]), passphrase=pw) == 0
    bdir = root / "broker"
    args = ("broker-config", "--out", str(bdir), "--port", str(port), "--host", "127.0.0.1")
    assert provision(reg, *args, passphrase=pw) == 0
    gen = subprocess.run(
        [
            FIELDTERM,
            "sltd",
            "generate",
            "--records",
            "2000",
            "--seed",
            "7",
            "--out",
            str(bdir / "sltd.sqlite"),
            "--listed-sample",
            str(root / "listed.jsonl"),
            "--unlisted-sample",
            str(root / "unlisted.jsonl"),
            "--sample-size",
            "20",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert gen.returncode == 0, gen.stderr
    return Region(
        root, bdir, port, bundles, _jsonl(root / "listed.jsonl"), _jsonl(root / "unlisted.jsonl")
    )


@pytest.fixture(scope="module")
def region() -> Iterator[Region]:
    r = make_region()
    yield r
    r.stop_all()
    shutil.rmtree(r.root, ignore_errors=True)


@pytest.fixture(scope="module")
def broker(region: Region) -> Iterator[Mosquitto]:
    conf = (region.broker_dir / "mosquitto.conf").read_text()
    m = Mosquitto(region.broker_dir, port=region.port, conf_text=conf)
    m.start()
    try:
        yield m
    finally:
        m.stop()
