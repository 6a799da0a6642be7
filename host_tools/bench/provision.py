"""Bulk provisioning and a fleet-sized broker: ``fieldterm bench provision``.

1. **Headline**: ``fieldterm provision add-terminals --count N`` (10,000 by default) run as
   a technician runs it, a subprocess from ``init`` on, on a new registry with a
   regional broker directory: wall time (imports and the final broker render included)
   and terminals per second. The goal is N = 10,000 in under 60 s.
2. **Bulk against one at a time**, on that region of N terminals, in interleaved passes:
   one ``add-terminals`` batch of ``--batch`` terminals, then ``--singles`` single
   ``add-terminal`` runs (each rewrites every broker directory, as the command does),
   in process; milliseconds per terminal, p50 and p99 over the passes, and the ratio.
3. **Broker start with the fleet's dynamic security**: Mosquitto from the generated
   ``mosquitto.conf`` of the N-terminal region, against the same broker of a region with
   no terminal (the baseline), interleaved: seconds until it accepts a TCP connection,
   p50 and p99, the ratio, the ``dynamic-security.json`` size and the broker's RSS.

The bench fails (exit 1) when the work does not add up: a bundle or a registry row
missing after the run, or a broker that does not start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_tools.mosquitto import Mosquitto, free_port

GOAL_S = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, help="terminals in the headline run (default 10000)")
    p.add_argument("--quick", action="store_true", help="500 terminals, 2 passes (smoke run)")
    p.add_argument("--passes", type=int, default=5, help="interleaved passes (default 5)")
    p.add_argument("--batch", type=int, default=200, help="terminals per bulk pass (200)")
    p.add_argument("--singles", type=int, default=3, help="add-terminal runs per pass (3)")
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")


def _cli(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "firmware.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    if r.returncode:
        raise RuntimeError(
            f"fieldterm {' '.join(args[:4])}: exit {r.returncode}: {r.stderr[-800:]}"
        )
    return time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs), q)), 3)


def _region(root: Path, name: str) -> tuple[Path, Path, int]:
    """``init`` and ``broker-config`` (the technician's commands); (registry, broker, port)."""
    reg, broker, port = root / f"{name}-registry", root / f"{name}-broker", free_port()
    _cli("provision", "--registry", str(reg), "init", "--region", "central",
         "--no-passphrase", "--port", str(port))  # fmt: skip
    _cli("provision", "--registry", str(reg), "broker-config", "--out", str(broker),
         "--service-port", str(free_port()))  # fmt: skip
    return reg, broker, port


def _start_time(broker_dir: Path, port: int, workdir: Path) -> tuple[float, float]:
    """Seconds until the broker from ``broker_dir`` accepts a connection; its RSS (MB)."""
    conf = (broker_dir / "mosquitto.conf").read_text()
    b = Mosquitto(workdir, port=port, conf_text=conf)
    t0 = time.perf_counter()
    b.start(timeout=120)
    took = time.perf_counter() - t0
    rss = 0.0
    try:
        assert b.proc is not None
        for line in Path(f"/proc/{b.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    finally:
        b.stop()
    return took, rss


def run(args: argparse.Namespace) -> dict[str, Any]:
    from host_tools.provision import bulk, deploy  # noqa: PLC0415 -- cryptography stack
    from host_tools.provision.authority import (  # noqa: PLC0415
        BundleTarget,
        RegionAuthority,
        TerminalOptions,
    )

    count = args.count or (500 if args.quick else 10_000)
    passes = 2 if args.quick else args.passes
    root = Path(args.workdir or tempfile.mkdtemp(prefix="fieldterm-bench-prov-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)  # Mosquitto drops to the user 'mosquitto', which must traverse
    failures: list[str] = []
    out: dict[str, Any] = {"terminals": count, "cpus": os.cpu_count()}
    try:
        reg, broker, port = _region(root, "fleet")
        bundles = root / "bundles"
        headline = _cli(
            "provision", "--registry", str(reg), "add-terminals", "--count", str(count),
            "--prefix", "kiosk-", "--out", str(bundles), "--no-progress",
        )  # fmt: skip
        out["add_terminals_s"] = round(headline, 2)
        out["terminals_per_s"] = round(count / headline, 1)
        out["goal_s"] = GOAL_S
        out["goal_met"] = headline < GOAL_S
        with sqlite3.connect(reg / "registry.sqlite") as db:
            rows = db.execute("SELECT count(*) FROM terminals").fetchone()[0]
        made = sum(1 for _ in bundles.iterdir())
        if rows != count or made != count:
            failures.append(f"{rows} registry rows and {made} bundles for {count} terminals")
        dyn = broker / "dynamic-security.json"
        out["dynsec_json_mb"] = round(dyn.stat().st_size / 2**20, 2)

        # 2. bulk vs one at a time, interleaved, in process on the N-terminal region
        bulk_ms: list[float] = []
        single_ms: list[float] = []
        render_s: list[float] = []
        region = RegionAuthority.open(reg)
        try:
            n = count + 1
            for _ in range(passes):
                ids = [f"bench-{i:06d}" for i in range(n, n + args.batch)]
                n += args.batch
                t0 = time.perf_counter()
                bulk.add_terminals(region, ids, root / "more", TerminalOptions())
                t1 = time.perf_counter()
                deploy.refresh_all(region)  # once per add-terminals command
                t2 = time.perf_counter()
                bulk_ms.append((t2 - t0) * 1000 / args.batch)
                render_s.append(t2 - t1)
                for _ in range(args.singles):
                    tid = f"bench-{n:06d}"
                    n += 1
                    t0 = time.perf_counter()
                    region.add_terminal(
                        tid, BundleTarget(out=root / "one" / tid), TerminalOptions()
                    )
                    deploy.refresh_all(region)  # what add-terminal does after, every time
                    single_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            region.close()
        out["bulk_ms_per_terminal_p50"] = _pct(bulk_ms, 50)
        out["bulk_ms_per_terminal_p99"] = _pct(bulk_ms, 99)
        out["single_add_terminal_ms_p50"] = _pct(single_ms, 50)
        out["single_add_terminal_ms_p99"] = _pct(single_ms, 99)
        out["single_over_bulk"] = round(
            out["single_add_terminal_ms_p50"] / out["bulk_ms_per_terminal_p50"], 1
        )
        out["broker_render_s_p50"] = _pct(render_s, 50)

        # 3. broker start: the fleet's dynamic security against an empty region's
        _reg0, broker0, port0 = _region(root, "empty")
        fleet_s: list[float] = []
        empty_s: list[float] = []
        rss = 0.0
        for i in range(passes):
            for d, p, acc in ((broker, port, fleet_s), (broker0, port0, empty_s)):
                took, r = _start_time(d, p, root / f"run-{d.name}-{i}")
                acc.append(took)
                if d == broker:
                    rss = max(rss, r)
        out["broker_start_s_p50"] = _pct(fleet_s, 50)
        out["broker_start_s_p99"] = _pct(fleet_s, 99)
        out["empty_broker_start_s_p50"] = _pct(empty_s, 50)
        out["broker_start_ratio"] = round(
            out["broker_start_s_p50"] / max(_pct(empty_s, 50), 1e-3), 1
        )
        out["broker_rss_mb"] = round(rss, 1)
        out["dynsec_clients"] = count + passes * (args.batch + args.singles) + 3
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    out["failures"] = failures
    return out


def format_text(r: dict[str, Any]) -> str:
    if "add_terminals_s" not in r:
        return "== bench provision == (no figures: see the failures)"
    lines = [
        f"== bench provision ({r['terminals']:,} terminals, {r['cpus']} CPUs) ==",
        f"  add-terminals (CLI, from start to broker render) {r['add_terminals_s']:8.2f} s  "
        f"({r['terminals_per_s']:,.0f} terminals/s; goal < {r['goal_s']:.0f} s: "
        f"{'met' if r['goal_met'] else 'NOT met'})",
    ]
    if "bulk_ms_per_terminal_p50" in r:
        lines += [
            f"  bulk, per terminal            p50 {r['bulk_ms_per_terminal_p50']:8.2f} ms  "
            f"p99 {r['bulk_ms_per_terminal_p99']:8.2f} ms",
            f"  add-terminal one at a time    p50 {r['single_add_terminal_ms_p50']:8.1f} ms  "
            f"p99 {r['single_add_terminal_ms_p99']:8.1f} ms  ({r['single_over_bulk']}x bulk)",
            f"  broker directory render                 p50 {r['broker_render_s_p50']:8.2f} s",
        ]
    if "broker_start_s_p50" in r:
        lines += [
            f"  mosquitto start, {r['dynsec_clients']:,} dynsec clients "
            f"({r['dynsec_json_mb']} MB) p50 {r['broker_start_s_p50']:.2f} s  "
            f"p99 {r['broker_start_s_p99']:.2f} s  ({r['broker_start_ratio']}x an empty "
            f"region's {r['empty_broker_start_s_p50']:.2f} s); RSS {r['broker_rss_mb']} MB",
        ]
    return "\n".join(lines)
