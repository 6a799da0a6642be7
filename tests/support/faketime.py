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

import glob
import os
from pathlib import Path

from tests.support.require import need

_SITECUSTOMIZE = '''\
import threading
import time


def _sleep(seconds):
    """time.sleep under libfaketime's wall-clock-only mode (EINVAL otherwise)."""
    if seconds > 0:
        threading.Event().wait(seconds)


time.sleep = _sleep
'''


def libfaketime() -> str:
    """The libfaketime shared object; ``need("faketime", ...)`` when it is not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        need("faketime", "libfaketime missing (make system-deps installs the faketime package)")
    return found[0]


def faketime_env(
    offset_s: float, workdir: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child process whose wall clock is ``offset_s`` off."""
    site = workdir / "faketime-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ if base is None else base)
    env.pop("NOTIFY_SOCKET", None)
    env["LD_PRELOAD"] = libfaketime()
    env["FAKETIME"] = f"{offset_s:+.0f}"
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    env["FAKETIME_DONT_RESET"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return env
