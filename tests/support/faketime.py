"""Run a real process with its wall clock shifted (libfaketime), as a kiosk whose clock is
wrong: a Raspberry Pi without an RTC that booted at its last saved time, or one set ahead.

Only the wall clock is shifted (``FAKETIME_DONT_FAKE_MONOTONIC=1``): with the monotonic
clock faked too, every timed wait in Python hangs (parts-checked.md). With the wall clock
alone ``time.sleep`` fails with EINVAL, so a ``sitecustomize`` on ``PYTHONPATH`` replaces
it with a timed ``Event().wait`` -- in the test harness only, never in the product.

    env = faketime_env(-30 * 86400, tmp_path)
    subprocess.run([FIELDTERM, "query", ...], env=env)
"""

from __future__ import annotations

import os
from pathlib import Path

from host_tools.chaos import clock
from host_tools.localregion.errors import LocalRegionError
from tests.support.require import need

#: The harness-only ``time.sleep`` replacement (shared with the chaos run's clock-step).
SITECUSTOMIZE = clock.SITECUSTOMIZE


def libfaketime() -> str:
    """The libfaketime shared object; ``need("faketime", ...)`` when it is not installed."""
    try:
        return clock.libfaketime()
    except LocalRegionError as exc:
        need("faketime", str(exc))
        raise


def faketime_env(
    offset_s: float, workdir: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child process whose wall clock is ``offset_s`` off."""
    site = workdir / "faketime-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ if base is None else base)
    env.pop("NOTIFY_SOCKET", None)
    env["LD_PRELOAD"] = libfaketime()
    env["FAKETIME"] = f"{offset_s:+.0f}"
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    env["FAKETIME_DONT_RESET"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return env
