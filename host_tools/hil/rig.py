"""``make hil``: run the HIL scenarios on emulated machines and print one closing line.

    python -m host_tools.hil.rig                      # every default scenario
    python -m host_tools.hil.rig -s probe-raspi3b     # just one
    python -m host_tools.hil.rig --list

Output: a line per scenario (``hil: <name> PASS|FAIL <seconds> s``), then exactly one
``hil: N passed, N failed``. Exit status 1 on any failure. A failed scenario keeps its
run directory (guest console log, pin timeline, broker log) and prints where it is.
Scenarios run one after another: two guests at once are too slow on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import FieldtermError
from host_tools.hil.base import cache_root
from host_tools.hil.image import KioskImage, build_image
from host_tools.hil.scenarios import SCENARIOS, default_scenarios
from host_tools.hil.scenarios.common import Context

log = logging.getLogger(__name__)


def runs_root() -> Path:
    """Where run directories go: ``$FIELDTERM_HIL_RUNS`` or ``<cache>/runs``."""
    env = os.environ.get("FIELDTERM_HIL_RUNS")
    return Path(env) if env else cache_root() / "runs"


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    seconds: float
    error: str
    rundir: Path
    timings: dict[str, float]
    notes: tuple[str, ...]


def run_one(
    name: str,
    func: Callable[[Context], None],
    image: KioskImage,
    root: Path,
    *,
    keep: bool,
    timeout_scale: float,
) -> Outcome:
    rundir = root / name
    rundir.mkdir(parents=True, exist_ok=True)
    ctx = Context(name, image, rundir, timeout_scale=timeout_scale)
    t0 = time.monotonic()
    error = ""
    try:
        func(ctx)
    except (FieldtermError, OSError, AssertionError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        (rundir / "error.txt").write_text(traceback.format_exc())
    seconds = round(time.monotonic() - t0, 1)
    (rundir / "root.img").unlink(missing_ok=True)  # 2 GiB sparse copy; the cache has it
    outcome = Outcome(
        name,
        not error,
        seconds,
        error,
        rundir,
        {k: round(v, 1) for k, v in ctx.timings.items()},
        tuple(ctx.notes),
    )
    (rundir / "result.json").write_text(
        json.dumps(
            {
                "name": name,
                "passed": outcome.passed,
                "seconds": seconds,
                "error": error,
                "timings": outcome.timings,
                "notes": list(outcome.notes),
            },
            indent=2,
        )
        + "\n"
    )
    if outcome.passed and not keep:
        shutil.rmtree(rundir, ignore_errors=True)
    return outcome


def stalled_before_ready(out: Outcome) -> bool:
    """The guest timed out before its agent was ever ready, so nothing of the kiosk's
    behaviour was checked: an emulator stall (seen once in CI: the raspi3b console went
    quiet 50 s into the boot, QEMU printed a GLib timer assertion, and no agent came up
    in 450 s). Such a scenario is booted once more; any other failure stands."""
    return (
        not out.passed
        and out.error.startswith("FieldtermTimeout")
        and "agent_ready" not in out.timings
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m host_tools.hil.rig",
        description="Hardware-in-the-loop: boot the kiosk image on emulated raspi3b and virt "
        "machines (QEMU) and check UART, GPIO and MQTT behaviour from the host. Ends with "
        "'hil: N passed, N failed'.",
    )
    parser.add_argument("-s", "--scenario", action="append", help="run only these (repeatable)")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument("--keep", action="store_true", help="keep run directories on success")
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=float(os.environ.get("FIELDTERM_HIL_SLOW", "1")),
        help="multiply every guest timeout (slow machines); env FIELDTERM_HIL_SLOW",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, sc in SCENARIOS.items():
            missing = sc.missing()
            print(f"{name:22s} {sc.doc}" + (f" [needs {', '.join(missing)}]" if missing else ""))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    defaults, unavailable = default_scenarios()
    names = args.scenario or defaults
    if not args.scenario:
        for name, missing in unavailable.items():
            print(f"hil: {name} not run: the tree has no {', '.join(missing)} yet")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)} (see --list)")
    t0 = time.monotonic()
    image = build_image()
    print(f"hil: image {image.path} ready after {time.monotonic() - t0:.0f} s", flush=True)
    root = runs_root() / time.strftime("%Y%m%dT%H%M%S")
    outcomes = []
    for name in names:
        print(f"hil: {name} ...", flush=True)
        out = run_one(
            name,
            SCENARIOS[name].func,
            image,
            root,
            keep=args.keep,
            timeout_scale=args.timeout_scale,
        )
        if stalled_before_ready(out):
            print(f"hil: {name} FAIL before its agent was ready: {out.error}")
            print(f"hil:   kept {out.rundir}; booting {name} once more (an emulator stall)")
            out = run_one(
                name,
                SCENARIOS[name].func,
                image,
                root / "retry",
                keep=args.keep,
                timeout_scale=args.timeout_scale,
            )
        outcomes.append(out)
        timing = " ".join(f"{k}={v}s" for k, v in out.timings.items())
        print(f"hil: {name} {'PASS' if out.passed else 'FAIL'} {out.seconds:.0f} s {timing}")
        if not out.passed:
            print(f"hil:   {out.error}")
            print(f"hil:   kept {out.rundir} (console.log, pins.txt, error.txt)")
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    print(f"hil: total {time.monotonic() - t0:.0f} s")
    print(f"hil: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
