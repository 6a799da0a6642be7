"""Sealed, looked-up, audited queries against a plaintext paho v5 echo, in one run.

Both sides run on one Mosquitto this benchmark starts (mTLS, QoS 1) and are driven by
the same load generator (:mod:`host_tools.bench.loadgen`): simulated terminals, each
with a window of outstanding queries, for a fixed time (throughput), then one query at a
time (round-trip p50/p99). The two runs differ only in what answers:

- ``echo``: a paho v5 responder process that returns 200 bytes to ``ResponseTopic`` with
  ``CorrelationData`` (:mod:`host_tools.bench.echo`);
- ``sealed``: the regional service (``fieldterm regional``) with a synthetic SLTD list of
  ``--records`` documents, queried through the sealed query client.

Prints ``sealed_qps``, ``echo_qps``, ``ratio`` (sealed/echo) and p50/p99 for both.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.bench.echo import EchoClient, Endpoint
from host_tools.bench.loadgen import LoadResult, WindowedLoad
from host_tools.mosquitto import BrokerTls, Mosquitto, free_port
from host_tools.proc import stop_process


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--records",
        type=int,
        default=1_000_000,
        help="SLTD records behind the regional service (default 1 M)",
    )
    p.add_argument("--terminals", type=int, default=4, help="simulated terminals (4)")
    p.add_argument(
        "--window",
        type=int,
        default=200,
        help="outstanding queries in total, split over terminals (200)",
    )
    p.add_argument("--duration", type=float, default=8.0, help="seconds per throughput run (8)")
    p.add_argument(
        "--serial",
        type=int,
        default=2000,
        help="one-at-a-time queries for p50/p99 (2000, after 200 warm-up)",
    )
    p.add_argument("--quick", action="store_true", help="short runs, 20k records (smoke run)")
    p.add_argument("--echo-only", action="store_true", help="run only the echo baseline")
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")


ECHO_ACL = """
# benchmark echo baseline (added by host_tools.bench.regional)
pattern write bench/echo/q/%u
pattern read bench/echo/r/%u
pattern read bench/echo/q/+
pattern write bench/echo/r/+
"""


@dataclass(frozen=True)
class BenchRegion:
    """A region provisioned with the real tool: broker files, regional config, bundles."""

    dir: Path
    region: str
    port: int
    broker_dir: Path
    terminals: tuple[str, ...]

    @property
    def ca(self) -> Path:
        return self.broker_dir / "ca.crt"

    def bundle(self, tid: str) -> Path:
        return self.dir / "bundles" / tid

    def broker_tls(self) -> BrokerTls:
        return BrokerTls(
            self.ca,
            self.broker_dir / "broker.crt",
            self.broker_dir / "broker.key",
            self.broker_dir / "crl.pem",
        )

    def acl(self) -> str:
        return (self.broker_dir / "mosquitto.acl").read_text() + ECHO_ACL

    def terminal_endpoint(self, tid: str) -> Endpoint:
        b = self.bundle(tid)
        return Endpoint("127.0.0.1", self.port, self.ca, b / "client.crt", b / "client.key")

    def responder_endpoint(self) -> Endpoint:
        d = self.broker_dir
        return Endpoint("127.0.0.1", self.port, self.ca, d / "regional.crt", d / "regional.key")


def provision_region(work: Path, terminals: int, region: str = "bench") -> BenchRegion:
    """``fieldterm provision init / add-terminal / broker-config`` into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pp = work / "passphrase"
    pp.write_text("benchmark only\n")
    pp.chmod(0o600)
    base = [
        sys.executable,
        "-m",
        "firmware.cli",
        "provision",
        "--registry",
        str(work / "registry"),
        "--passphrase-file",
        str(pp),
    ]

    def prov(*argv: str) -> None:
        res = subprocess.run(
            [*base, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if res.returncode:
            raise RuntimeError(f"provision {argv[0]} failed: {res.stderr[-1500:]}")

    prov("init", "--region", region, "--host", "127.0.0.1", "--port", str(port))
    tids = tuple(f"bench-term-{i:03d}" for i in range(terminals))
    for tid in tids:
        prov("add-terminal", tid, "--out", str(work / "bundles" / tid))
    prov("broker-config", "--out", str(work / "broker"), "--port", str(port))
    return BenchRegion(work, region, port, work / "broker", tids)


def drive(submitters: list[Any], args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """Throughput with the window, then latency one at a time; the same for every system."""
    per = max(1, args.window // len(submitters))
    loaded: LoadResult = WindowedLoad(
        submitters, window=per, duration=args.duration, warmup=min(200, args.serial)
    ).run()
    serial: LoadResult = WindowedLoad(
        submitters[:1], window=1, total=args.serial, warmup=min(200, args.serial)
    ).run()
    return {
        f"{prefix}_qps": loaded.qps,
        f"{prefix}_p50_us": serial.percentile_us(50),
        f"{prefix}_p99_us": serial.percentile_us(99),
        f"{prefix}_loaded_p50_us": loaded.percentile_us(50),
        f"{prefix}_loaded_p99_us": loaded.percentile_us(99),
        f"{prefix}_serial_qps": serial.qps,
        f"{prefix}_lost": loaded.lost + serial.lost,
        f"{prefix}_errors": loaded.errors + serial.errors,
    }


def run_echo(args: argparse.Namespace, reg: BenchRegion) -> dict[str, Any]:
    ep = reg.responder_endpoint()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "host_tools.bench.echo",
            "--id",
            "bench-echo-responder",
            "--port",
            str(ep.port),
            "--ca",
            str(ep.ca),
            "--cert",
            str(ep.cert),
            "--key",
            str(ep.key),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    clients: list[EchoClient] = []
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("echo responder did not start")
        for tid in reg.terminals:
            clients.append(EchoClient(tid, reg.terminal_endpoint(tid)))
        return drive([c.submit for c in clients], args, "echo")
    finally:
        for client in clients:
            client.close()
        stop_process(proc, grace=10)


def prepare_store(reg: BenchRegion, records: int, seed: int = 1) -> dict[str, Any]:
    """The regional's SLTD store (``sltd.sqlite`` next to regional.toml) and its index."""
    from host_tools.sltd.lookup import SltdLookup, read_index_key  # noqa: PLC0415
    from host_tools.sltd.samples import generate_store  # noqa: PLC0415

    db = reg.broker_dir / "sltd.sqlite"
    t0 = time.perf_counter()
    summary = generate_store(
        db,
        records=records,
        seed=seed,
        force=True,
        progress=False,
        listed_sample=reg.dir / "listed.jsonl",
        unlisted_sample=reg.dir / "unlisted.jsonl",
        sample_size=200,
    )
    t1 = time.perf_counter()
    with SltdLookup.open(db, read_index_key(reg.broker_dir / "index.key")):
        pass  # builds <db>.idx-<keyid> so the service maps it at once
    return {
        "store_generate_s": t1 - t0,
        "index_build_s": time.perf_counter() - t1,
        "store_records": summary["records"],
    }


def start_regional(reg: BenchRegion, timeout: float = 120.0) -> subprocess.Popen[bytes]:
    """``fieldterm regional --config regional.toml``; ready when its health file appears."""
    health = reg.broker_dir / "regional-health.json"
    health.unlink(missing_ok=True)
    with open(reg.dir / "regional.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware.cli",
                "regional",
                "--config",
                str(reg.broker_dir / "regional.toml"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"regional service exited with {proc.returncode}; see {reg.dir / 'regional.log'}"
            )
        if health.exists():
            return proc
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError("regional service did not become healthy")


def _sample_keys(path: Path) -> list[Any]:
    """Document keys of the MRZ sample file written by ``prepare_store``."""
    import json  # noqa: PLC0415

    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

    keys = []
    for line in path.read_text().splitlines():
        if line.strip():
            keys.append(DocumentKey.from_mrz(parse(json.loads(line))))
    return keys


def run_sealed(args: argparse.Namespace, reg: BenchRegion, broker: Mosquitto) -> dict[str, Any]:
    """The regional service with ``args.records`` records, driven exactly like the echo.

    Each simulated terminal is a real :class:`~firmware.client.client.QueryClient` from its
    provisioned bundle: sealed queries, looked up, audited and answered by a real
    ``fieldterm regional`` process. About 1 query in 10,000 is for a listed document.
    """
    import itertools  # noqa: PLC0415
    import os  # noqa: PLC0415

    from firmware.client.client import QueryClient  # noqa: PLC0415
    from firmware.client.config import ClientConfig  # noqa: PLC0415

    info = prepare_store(reg, args.records)
    listed = _sample_keys(reg.dir / "listed.jsonl")
    unlisted = _sample_keys(reg.dir / "unlisted.jsonl")
    counter = itertools.count()
    outcomes: dict[str, int] = {}

    def pick() -> Any:
        n = next(counter)
        return listed[n % len(listed)] if n % 10_000 == 9_999 else unlisted[n % len(unlisted)]

    def make_submit(client: QueryClient) -> Any:
        def submit(done: Any) -> None:
            def on_verdict(v: Any) -> None:
                outcomes[v.outcome] = outcomes.get(v.outcome, 0) + 1
                done(v.outcome in ("NO_MATCH", "POSSIBLE_MATCH"))

            client.submit(os.urandom(16), pick(), on_verdict, timeout=30.0)

        return submit

    proc = start_regional(reg)
    clients: list[QueryClient] = []
    try:
        for tid in reg.terminals:
            c = QueryClient(ClientConfig.load(reg.bundle(tid) / "terminal.toml"))
            c.start()
            if not c.wait_connected(20):
                raise RuntimeError(f"{tid} did not connect to the broker")
            clients.append(c)
        res = drive([make_submit(c) for c in clients], args, "sealed")
    finally:
        for c in clients:
            c.close()
        stop_process(proc)
    return {**info, **res, "sealed_outcomes": dict(sorted(outcomes.items()))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.duration = min(args.duration, 2.0)
        args.serial = min(args.serial, 300)
        if args.records == 1_000_000:
            args.records = 20_000
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="fieldterm-bench-regional-")
        work = Path(tmp)
    try:
        shutil.rmtree(work / "region", ignore_errors=True)  # a fresh region every run
        reg = provision_region(work / "region", args.terminals)
        res: dict[str, Any] = {
            "records": args.records,
            "terminals": args.terminals,
            "window": args.window,
            "duration_s": args.duration,
            "serial_queries": args.serial,
            "qos": 1,
            "tls": "mTLS",
        }
        with Mosquitto(
            work / "mosquitto",
            tls=reg.broker_tls(),
            acl=reg.acl(),
            port=reg.port,
            persistence=False,
        ) as broker:
            t0 = time.perf_counter()
            res.update(run_echo(args, reg))
            res["echo_run_s"] = time.perf_counter() - t0
            if not args.echo_only:
                try:
                    res.update(run_sealed(args, reg, broker))
                except NotImplementedError as exc:
                    res["sealed_error"] = str(exc)
        if "sealed_qps" in res and res.get("echo_qps"):
            res["ratio"] = res["sealed_qps"] / res["echo_qps"]
            res["p50_ratio"] = res["sealed_p50_us"] / res["echo_p50_us"]
        return res
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
