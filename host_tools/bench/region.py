"""The region ``bench regional`` runs in, built in this one module.

:func:`bench_region` provisions a region with the real tool (``fieldterm provision init /
add-terminal / broker-config``), writes a synthetic SLTD list with samples of listed and
unlisted documents, starts Mosquitto from the provisioned TLS files and ACL (plus the echo
baselines' topics) and one ``fieldterm regional`` process, and yields a
:class:`RunningRegion`. Everything the benchmark needs from the region goes through that
object, so building it another way changes this module only.

Ready means what the product says: the regional's health file names this process's pid
and says ``ready`` (the SUBACK of its query subscription) or, from a service that does not
write ``ready`` yet, ``connected``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.client.config import ClientConfig
from firmware.errors import SetupError
from firmware.transport.mqtt import BrokerConfig
from host_tools.mosquitto import BrokerTls, Mosquitto, free_port
from host_tools.proc import stop_process
from host_tools.regional.config import RegionalConfig

#: Topics of the two echo baselines (host_tools.bench.echo), next to the product's ACL.
ECHO_ACL = """
# benchmark echo baselines (added by host_tools.bench.region)
pattern write bench/echo/q/%u
pattern read bench/echo/r/%u
pattern read bench/echo/q/+
pattern write bench/echo/r/+
pattern write bench/min/q/%u
pattern read bench/min/r/%u
pattern read bench/min/q/+
pattern write bench/min/r/+
"""


@dataclass
class RunningRegion:
    """A provisioned region with its broker and one regional process running."""

    dir: Path
    terminals: tuple[str, ...]
    regional: RegionalConfig
    listed: list[Any]  # DocumentKey of listed documents (must answer POSSIBLE_MATCH)
    unlisted: list[Any]  # DocumentKey of unlisted documents (must answer NO_MATCH)
    info: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None

    def terminal_config(self, tid: str) -> ClientConfig:
        return ClientConfig.load(self.dir / "bundles" / tid / "terminal.toml")

    def terminal_broker(self, tid: str) -> BrokerConfig:
        return self.terminal_config(tid).broker

    @property
    def responder_broker(self) -> BrokerConfig:
        """The identity the echo responders use: the regional service's own."""
        return self.regional.broker

    @property
    def audit_db(self) -> Path:
        return self.regional.audit_db

    def stop_regional(self) -> dict[str, Any]:
        """Stop the regional process (it flushes its audit trail) and return the health
        it wrote last."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
        return read_health(self.regional.health_file)


def read_health(path: Path) -> dict[str, Any]:
    """The regional's health file (written atomically); empty if absent."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _provision(work: Path, terminals: int, region: str) -> tuple[str, ...]:
    """``fieldterm provision init / add-terminal / broker-config`` into ``work``."""
    port = free_port()
    pp = work / "passphrase"
    pp.write_text("benchmark only\n")
    pp.chmod(0o600)
    base = [sys.executable, "-m", "firmware.cli", "provision"]
    base += ["--registry", str(work / "registry"), "--passphrase-file", str(pp)]

    def prov(*argv: str) -> None:
        res = subprocess.run(
            [*base, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if res.returncode:
            raise SetupError(f"provision {argv[0]} failed: {res.stderr[-1500:]}")

    prov("init", "--region", region, "--host", "127.0.0.1", "--port", str(port))
    tids = tuple(f"bench-term-{i:03d}" for i in range(terminals))
    for tid in tids:
        prov("add-terminal", tid, "--out", str(work / "bundles" / tid))
    prov("broker-config", "--out", str(work / "broker"), "--port", str(port))
    return tids


def _sample_keys(path: Path) -> list[Any]:
    """Document keys of an MRZ sample file (one JSON array of lines per line)."""
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

    return [
        DocumentKey.from_mrz(parse(json.loads(line)))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def _prepare_store(cfg: RegionalConfig, work: Path, records: int) -> dict[str, Any]:
    """The regional's SLTD store and its index, built before the service starts."""
    from host_tools.sltd.lookup import SltdLookup, read_index_key  # noqa: PLC0415
    from host_tools.sltd.samples import generate_store  # noqa: PLC0415

    t0 = time.perf_counter()
    summary = generate_store(
        cfg.sltd_db,
        records=records,
        seed=1,
        force=True,
        progress=False,
        listed_sample=work / "listed.jsonl",
        unlisted_sample=work / "unlisted.jsonl",
        sample_size=200,
    )
    t1 = time.perf_counter()
    with SltdLookup.open(cfg.sltd_db, read_index_key(cfg.index_key)):
        pass  # builds the index file so the service maps it at once
    return {
        "store_generate_s": t1 - t0,
        "index_build_s": time.perf_counter() - t1,
        "store_records": summary["records"],
    }


def _start_regional(cfg_path: Path, cfg: RegionalConfig, log_path: Path, timeout: float) -> Any:
    """``fieldterm regional --config regional.toml``, returned once its health says ready."""
    cfg.health_file.unlink(missing_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.cli", "regional", "--config", str(cfg_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"regional service exited with {proc.returncode}; see {log_path}")
        h = read_health(cfg.health_file)
        if h.get("pid") == proc.pid and h.get("ready", h.get("connected")) is True:
            return proc
        time.sleep(0.05)  # polling the health file, the service's own evidence
    stop_process(proc)
    raise SetupError(f"regional service not ready within {timeout:.0f} s; see {log_path}")


@contextmanager
def bench_region(work: Path, *, terminals: int, records: int) -> Iterator[RunningRegion]:
    """Provision, generate the list, start Mosquitto and one regional process; stop both
    on exit."""
    work.mkdir(parents=True, exist_ok=True)
    tids = _provision(work, terminals, "bench")
    cfg_path = work / "broker" / "regional.toml"
    cfg = RegionalConfig.load(cfg_path)
    info = _prepare_store(cfg, work, records)
    broker_dir = work / "broker"
    tls = BrokerTls(
        broker_dir / "ca.crt",
        broker_dir / "broker.crt",
        broker_dir / "broker.key",
        broker_dir / "crl.pem",
    )
    acl = (broker_dir / "mosquitto.acl").read_text() + ECHO_ACL
    with Mosquitto(work / "mosquitto", tls=tls, acl=acl, port=cfg.broker.port, persistence=False):
        proc = _start_regional(cfg_path, cfg, work / "regional.log", timeout=120.0)
        region = RunningRegion(
            dir=work,
            terminals=tids,
            regional=cfg,
            listed=_sample_keys(work / "listed.jsonl"),
            unlisted=_sample_keys(work / "unlisted.jsonl"),
            info=info,
            _proc=proc,
        )
        try:
            yield region
        finally:
            region.stop_regional()
