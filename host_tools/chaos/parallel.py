"""``fieldterm chaos --parallel K``: the scenarios shared out over K local regions at once.

Twenty runs of every scenario one after another take hours (a run is its scans, its fault
-- up to the 60 s partition -- and the settling after it), while the machine is mostly
idle: a run waits on timers, not on the CPU. So the scenarios are shared out over K child
``fieldterm chaos --json`` processes, each with a local region of its own (its own
Mosquitto, regional, PostgreSQL, kiosk agent, and network namespaces ``ftk-<index>`` on
their own /30), longest expected work first onto the least loaded child. A scenario is
never split, so its setup and teardown run once, as in one process.

Every child gets a seed drawn from the parent's; its command line is printed first, so a
failing child replays alone with exactly that line. The children's progress lines are
printed as they come, prefixed with the child's number; their JSON summaries are merged
into one table and one last line, as a single run prints them.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from host_tools.localregion.runner import fieldterm_argv
from host_tools.reaper import watch

#: The default first network-namespace index (``10.199.<index>.0/30``); child i uses
#: the first + i.
FIRST_LINK_INDEX = 9
#: Seconds a run costs besides its scans and its fault: settling, the recovery probe,
#: restarts. An estimate for planning, on the safe side: the 20-run make chaos whose
#: longest child was planned at 28 min finished in 22 min.
RUN_OVERHEAD_S = 12.0
SCAN_S = 1.6  # one scan: the document, its verdict, the officer's pause


@dataclass(frozen=True)
class Child:
    index: int
    scenarios: tuple[str, ...]
    seed: int
    argv: tuple[str, ...]
    expected_s: float


def expected_run_s(fault_s: float, scans: int) -> float:
    """What one run of a scenario whose fault lasts ``fault_s`` is expected to take."""
    return RUN_OVERHEAD_S + scans * SCAN_S + fault_s


def share_out(costs: dict[str, float], k: int) -> list[list[str]]:
    """``costs`` (scenario -> expected seconds for all its runs) over at most ``k``
    groups: longest first onto the least loaded group (LPT; within 4/3 of the best)."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(k, len(costs))))]
    load = [0.0] * len(groups)
    for name in sorted(costs, key=lambda n: (-costs[n], n)):
        i = min(range(len(groups)), key=lambda j: (load[j], j))
        groups[i].append(name)
        load[i] += costs[name]
    return [g for g in groups if g]


def plan(
    names: Sequence[str],
    fault_len: Callable[[str], float],
    *,
    k: int,
    seed: int,
    repeat: int,
    scans: int,
    passthrough: Sequence[str],
    first_index: int = FIRST_LINK_INDEX,
) -> list[Child]:
    """The children: scenarios, seed and the exact command line of each (child i's link
    index is ``first_index + i``)."""
    costs = {n: repeat * expected_run_s(fault_len(n), scans) for n in names}
    rng = random.Random(seed)
    out = []
    for i, group in enumerate(share_out(costs, k)):
        child_seed = rng.randrange(1 << 31)
        argv = fieldterm_argv(
            "chaos", "--json", "--seed", str(child_seed), "--repeat", str(repeat),
            "--scans", str(scans), "--link-index", str(first_index + i),
            *passthrough, *(x for n in group for x in ("--scenario", n)),
        )  # fmt: skip
        out.append(Child(i, tuple(group), child_seed, tuple(argv), sum(costs[n] for n in group)))
    return out


def merge(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary from the children's (their scenarios are disjoint)."""
    scen: dict[str, Any] = {}
    for s in summaries:
        scen.update(s["scenarios"])
    total = {k: sum(r[k] for r in scen.values())
             for k in ("runs", "accepted", "lost", "wrong", "duplicated", "crashes")}  # fmt: skip
    links: list[dict[str, int]] = [s["link"] for s in summaries if s.get("link")]
    return {
        "scenarios": scen,
        "total": total,
        "ok": bool(summaries) and all(s["ok"] for s in summaries),
        "children": [
            {
                "seed": s.get("seed"),
                "elapsed_s": s.get("elapsed_s"),
                "ok": s["ok"],
                "scenarios": list(s["scenarios"]),
            }
            for s in summaries
        ],
        "link": {k: sum(x.get(k, 0) for x in links) for k in links[0]} if links else None,
    }


def run(
    children: Sequence[Child], log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Start every child, relay its progress lines, wait for all; their summaries, and
    what went wrong with the ones that gave none."""
    procs = []
    for c in children:
        log(f"chaos[{c.index}]: {', '.join(c.scenarios)} (about {c.expected_s / 60:.0f} min)")
        log(f"chaos[{c.index}]: replay alone with: fieldterm {' '.join(c.argv[3:])}")
        procs.append(
            subprocess.Popen(
                c.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        )
        watch(procs[-1].pid)  # SIGTERM if this parent dies: the child stops its region
    outs: list[list[str]] = [[] for _ in children]

    def relay(i: int, p: subprocess.Popen[str]) -> None:
        assert p.stderr is not None
        for line in p.stderr:
            log(f"[{i}] {line.rstrip()}")

    def collect(i: int, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        outs[i] = p.stdout.read().splitlines()

    threads = [
        threading.Thread(target=fn, args=(i, p), daemon=True)
        for i, p in enumerate(procs)
        for fn in (relay, collect)
    ]
    for t in threads:
        t.start()
    try:
        for p in procs:
            p.wait()
    except BaseException:  # ^C: no child keeps its region running
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=120)
        raise
    for t in threads:
        t.join(timeout=10)
    summaries, problems = [], []
    for c, p, out in zip(children, procs, outs, strict=True):
        try:
            summaries.append(json.loads(out[-1]))
        except (IndexError, ValueError):
            problems.append(f"chaos[{c.index}] ({', '.join(c.scenarios)}) exited {p.returncode}"
                            " without a summary")  # fmt: skip
    return summaries, problems


def main(children: Sequence[Child], log: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Run the :func:`plan`'s children; the merged summary (timed) and what went wrong."""
    t0 = time.monotonic()
    summaries, problems = run(children, log)
    merged = merge(summaries)
    if problems:
        merged["ok"] = False
    merged["elapsed_s"] = round(time.monotonic() - t0, 1)
    return merged, problems
