"""``clock-step``: the kiosk's wall clock stepped forward and back while it runs.

The agent runs under libfaketime (Debian ``faketime``) reading its offset from a control
file (``FAKETIME_TIMESTAMP_FILE``, re-read on every call: ``FAKETIME_NO_CACHE=1``), so the
harness steps the clock of the running process by rewriting one line. Only the wall clock
is faked (``FAKETIME_DONT_FAKE_MONOTONIC=1``): with the monotonic clock faked Python's timed
waits hang (``/work/shared/notes/parts-checked.md``), and a real step (NTP, an operator)
moves the wall clock only. Under that mode ``time.sleep`` fails with EINVAL, so a
``sitecustomize`` on the agent's ``PYTHONPATH`` -- in this harness only, never in the
product -- replaces it with a timed ``Event().wait``.

Each run steps by minutes or days, forward or back, holds the step while scans flow, then
steps back to true time. A query deadline kept on the wall clock shows up here as a stall:
the recovery time after the step (the oracle's ``recovery`` column) grows with the step.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from host_tools.chaos.ctx import Ctx, Fault
from host_tools.localregion.errors import LocalRegionError

STEPS = (("+7m", 420), ("-7m", -420), ("+2d", 2 * 86400), ("-2d", -2 * 86400))

#: On PYTHONPATH of a process under libfaketime: harness only, never in the product.
SITECUSTOMIZE = '''\
import threading
import time


def _sleep(seconds):
    """time.sleep under libfaketime's wall-clock-only mode (EINVAL otherwise)."""
    if seconds > 0:
        threading.Event().wait(seconds)


time.sleep = _sleep
'''


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise LocalRegionError(
            "libfaketime missing (make system-deps installs the faketime package)"
        )
    return found[0]


def _control(ctx: Ctx) -> Path:
    return ctx.state_dir.with_name("faketime.rc")


def _set(ctx: Ctx, spec: str) -> None:
    path = _control(ctx)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(spec + "\n")
    os.replace(tmp, path)  # libfaketime never reads half a line


def faketime_env(ctx: Ctx) -> dict[str, str]:
    site = ctx.state_dir.with_name("faketime-site")
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    _set(ctx, "+0")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(_control(ctx)),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
        "PYTHONPATH": path,
    }


def clock_setup(ctx: Ctx) -> None:
    ctx.stop_agent()
    ctx.agent_env = faketime_env(ctx)
    ctx.restart_agent(wait=True)


def clock_teardown(ctx: Ctx) -> None:
    ctx.stop_agent()
    ctx.agent_env = {}
    ctx.restart_agent(wait=True)


def clock_step(ctx: Ctx) -> Fault:
    """Step while a query is in flight: the broker-to-kiosk direction is held for a
    moment around the step (when the kiosk is behind a link), so a query sent before the
    step is answered only after it -- a deadline on the wall clock then stalls."""
    spec, offset = ctx.rng.choice(STEPS)
    hold = ctx.seconds(20.0)
    if ctx.link is not None:
        ctx.link.set(drop={"down"})
        yield 1.5  # scans go out meanwhile; no answer comes back
    _set(ctx, spec)
    ctx.expect["clock_step_s"] = offset
    ctx.param(f"wall clock stepped {spec} for {hold:.0f} s" +
              (" with a query in flight" if ctx.link is not None else ""))  # fmt: skip
    if ctx.link is not None:
        yield 1.0
        ctx.link.clear()
    yield hold
    _set(ctx, "+0")
    ctx.note("wall clock stepped back to true time")


def clock_verify(ctx: Ctx, events: list[dict[str, Any]]) -> list[str]:
    """The step reached the agent: the regional's signed time hint moved its protocol
    time (a ``clock`` event with an offset near the step)."""
    step = ctx.expect.get("clock_step_s")
    seen = [float(e.get("offset_s") or 0) for e in events if e["event"] == "clock"]
    if step is None:
        return ["clock step: the step never ran"]
    if not any(abs(o + step) < 60 for o in seen):
        return [f"clock step: no clock event with an offset near {-step} s (seen {seen[:4]})"]
    return []
