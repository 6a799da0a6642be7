"""A ``fieldterm chaos`` that is stopped or killed leaves nothing of its region running.

SIGTERM unwinds the run as ^C does (the region is stopped on the way out); after SIGKILL
the reaper (:mod:`host_tools.reaper`) stops what the run started: the broker, which
drops to its own user, the PostgreSQL server, which ``pg_ctl`` forked away, the
regional and the agent. Before, an orphan agent took the next run's scans.
"""

from __future__ import annotations

import glob
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools.reaper import GRACE, start_time
from tests.support.require import need

LINK_INDEX = 230  # apart from the other chaos tests' links


def region_processes(workdir: Path, harness: int) -> dict[int, str]:
    """pid -> command line of every process but ``harness`` whose command line names
    ``workdir``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if str(workdir) in cmd and int(entry) != harness:
            found[int(entry)] = cmd
    return found


def wait_for_line(lines: queue.Queue[str | None], marker: str, timeout: float) -> list[str]:
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} from chaos; it said:\n" + "".join(seen[-40:]))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_stopped_or_killed_chaos_run_leaves_no_region_process(tmp_path, signum):
    if os.geteuid() != 0:
        need("root", "the region's broker and PostgreSQL run as their own users")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        need("pg", "the run keeps its list on a PostgreSQL cluster")
    workdir = tmp_path / "region"
    argv = [
        sys.executable, "-m", "firmware.cli", "chaos", "--scenario", "agent-kill",
        "--repeat", "50", "--store", "pg", "--workdir", str(workdir),
        "--link-index", str(LINK_INDEX),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for_line(lines, "agent-kill #1:", timeout=240)  # the region is up, scans flow
        running = region_processes(workdir, proc.pid)
        kinds = " ".join(running.values())
        for kind in ("mosquitto", "postgres", "firmware.cli regional", "firmware.cli agent"):
            assert kind in kinds, (kind, running)
        started = {pid: start_time(pid) for pid in running}
        proc.send_signal(signum)
        assert proc.wait(120) == (128 + signum if signum != signal.SIGKILL else -signum)
        end = time.monotonic() + GRACE + 20
        left = dict(running)
        while left and time.monotonic() < end:
            left = {p: c for p, c in left.items() if start_time(p) == started[p]}
            time.sleep(0.2)
        assert not left, f"still running after {signal.Signals(signum).name}: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
