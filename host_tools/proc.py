"""Stopping a process a host tool started (demo, benchmarks, HIL rig).

SIGTERM, a grace period, then SIGKILL. Only the given process is signalled, never a name
or a group it did not create.
"""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(
    proc: subprocess.Popen[Any], grace: float = 15.0, after_kill: float = 5.0
) -> int | None:
    """Stop ``proc`` if it still runs; returns its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(after_kill)
    return proc.returncode
