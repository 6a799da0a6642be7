"""``fieldterm bench fleet``: a region's whole fleet at once, and the region on K processes.

Runs ``fieldterm sim fleet`` (each run its own process and its own local region):

1. ``--terminals`` kiosks direct to the regional broker, ``--rate`` scans/s offered, the
   regional broker restarted once a third of the way in;
2. the same behind ``--sites`` bridged site brokers, the regional broker restarted once;
3. the region on K = 1, 2 and 4 regional processes (``--k-terminals`` kiosks direct, the
   same offered rate, no fault), in the order 1, 2, 4: answered q/s and latency for each.

Goals on this machine (issue 15): lost 0, wrong 0, p99 under 250 ms outside the restart,
recovery under 60 s. Lost or wrong scans make the benchmark fail; a missed latency or
recovery goal is reported as such (``goals``), with every figure. Memory: the brokers'
and the simulator's peak RSS. ``--quick``: a few hundred kiosks, for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

P99_GOAL_MS = 250.0
RECOVERY_GOAL_S = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--terminals", type=int, default=10_000, help="kiosks (10000)")
    p.add_argument("--sites", type=int, default=50, help="site brokers in the bridged run (50)")
    p.add_argument("--rate", type=float, default=1000.0, help="offered scans/s (1000)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (60)")
    p.add_argument("--regionals", type=int, default=2, help="regional processes (2)")
    p.add_argument(
        "--k-terminals", type=int, default=1000, help="kiosks in the K=1,2,4 runs (1000)"
    )
    p.add_argument("--k-duration", type=float, default=20.0, help="seconds per K run (20)")
    p.add_argument(
        "--only",
        choices=("direct", "bridged", "k"),
        action="append",
        help="run only these parts (repeatable; default all three)",
    )
    p.add_argument("--quick", action="store_true", help="smoke sizes (a few hundred kiosks)")


def _sim(label: str, *argv: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "firmware.cli", "sim", "fleet", *argv]
    print(f"fieldterm bench fleet: {label}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=3600, check=False)
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if not lines:
        return {"label": label, "error": f"exit {r.returncode}, no report", "wall_s": 0.0}
    out = json.loads(lines[-1])
    out.update(label=label, exit=r.returncode, wall_s=round(time.monotonic() - t0, 1))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, sites, rate, dur = args.terminals, args.sites, args.rate, args.duration
    kn, kdur = args.k_terminals, args.k_duration
    if args.quick:
        n, sites, rate, dur, kn, kdur = 300, 4, 100.0, 15.0, 200, 10.0
    parts = set(args.only or ("direct", "bridged", "k"))
    common = ["--rate", str(rate), "--duration", str(dur), "--drain", "150"]
    restart = ["--fault", f"broker@{dur / 3:.0f}"]
    runs: list[dict[str, Any]] = []
    if "direct" in parts:
        runs.append(_sim("direct", "--terminals", str(n), "--regionals", str(args.regionals),
                         *common, *restart))  # fmt: skip
    if "bridged" in parts:
        runs.append(_sim("bridged", "--terminals", str(n), "--sites", str(sites),
                         "--regionals", str(args.regionals), *common, *restart))  # fmt: skip
    scaling: list[dict[str, Any]] = []
    if "k" in parts:
        for k in (1, 2, 4):
            scaling.append(_sim(f"k={k}", "--terminals", str(kn), "--regionals", str(k),
                                "--rate", str(rate), "--duration", str(kdur)))  # fmt: skip
    failures: list[str] = []
    goals: dict[str, bool] = {}
    for r in [*runs, *scaling]:
        if "error" in r:
            failures.append(f"{r['label']}: {r['error']}")
            continue
        if r["lost"] or r["wrong"]:
            failures.append(f"{r['label']}: lost {r['lost']}, wrong {r['wrong']}")
    for r in runs:
        if "error" in r:
            continue
        p99 = r.get("p99_outside_ms")
        goals[f"{r['label']}_p99_under_{P99_GOAL_MS:.0f}ms"] = p99 is not None and p99 < P99_GOAL_MS
        rec = r.get("recovery_s")
        goals[f"{r['label']}_recovery_under_{RECOVERY_GOAL_S:.0f}s"] = (
            rec is not None and rec < RECOVERY_GOAL_S
        )
    # K processes against K = 1 in the same benchmark: the ratio of answered q/s
    base = next((r for r in scaling if r.get("regionals") == 1 and "error" not in r), None)
    ratios = {
        f"k{r['regionals']}_vs_k1_qps": round(r["answered_per_s"] / base["answered_per_s"], 2)
        for r in scaling
        if base and "error" not in r and base.get("answered_per_s")
    }
    return {
        "runs": runs, "scaling": scaling, "scaling_ratios": ratios, "goals": goals,
        "failures": failures,
    }  # fmt: skip


_ROW = "{:<9} {:>6} {:>5} {:>3} {:>7} {:>7} {:>5} {:>5} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}"


def format_text(result: dict[str, Any]) -> str:
    head = _ROW.format(
        "run", "kiosks", "sites", "K", "scans", "q/s", "lost", "wrong", "p50 ms", "p99 ms",
        "p99 out", "max ms", "recov s", "brk MB", "sim MB",
    )  # fmt: skip
    lines = ["== bench fleet ==", head]
    for r in [*result["runs"], *result["scaling"]]:
        if "error" in r:
            lines.append(f"{r['label']:<9} {r['error']}")
            continue
        lines.append(_ROW.format(
            r["label"], r["terminals"], r["sites"], r["regionals"], r["scans"],
            r.get("answered_per_s", ""), r["lost"], r["wrong"], _f(r["p50_ms"]),
            _f(r["p99_ms"]), _f(r.get("p99_outside_ms")), _f(r["max_ms"]),
            _f(r["recovery_s"]), _f(r["broker_rss_mb"]), _f(r.get("sim_rss_mb")),
        ))  # fmt: skip
    for name, ratio in result.get("scaling_ratios", {}).items():
        lines.append(f"  {name}: {ratio:.2f}x")
    for goal, met in result["goals"].items():
        lines.append(f"  goal {goal}: {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.1f}" if isinstance(x, float) else str(x)
