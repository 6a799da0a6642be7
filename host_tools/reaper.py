"""Processes a host tool started end with it, even when it is SIGKILLed.

A harness (``fieldterm chaos``, the local region, the test rig) starts brokers, regionals,
agents, PostgreSQL and FUSE file systems in sessions of their own, so that a ^C meant for
the harness does not reach them half-way. When the harness stops normally it stops them.
When it is SIGKILLed, or dies of a bug, nothing would: an orphan agent once reopened a
reused ``/dev/pts/N`` and took the next run's scans. ``PR_SET_PDEATHSIG`` does not cover
them either: Mosquitto run as root drops to its own user, which clears it, and
``pg_ctl`` forks the server away.

So the first :func:`watch` starts one small reaper process per harness, which reads the
harness's requests on a pipe. The harness's end of the pipe closes only when the harness
ends, however it ends; the reaper then sends each watched process that still runs its
stop signal (SIGTERM unless told otherwise), waits up to :data:`GRACE` seconds, and
SIGKILLs what is left. A process is identified by its pid *and* its start time, so a pid
that was reused by an unrelated process is never signalled. It signals nothing else.

    python -m host_tools.reaper        # what watch() runs; reads "PID START SIGNAL" lines
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

#: Seconds the watched processes get to stop before SIGKILL.
GRACE = 10.0

_lock = threading.Lock()
_reaper: list[subprocess.Popen[str]] = []  # this process's reaper, once started


def start_time(pid: int) -> int | None:
    """The process's start time (``/proc/PID/stat`` field 22), or None if it is gone or
    only a zombie (exited, its parent not yet told)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count after the last ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def watch(pid: int, stop_signal: int = signal.SIGTERM) -> None:
    """Have ``pid`` (a process this one started) stopped when this process ends."""
    started = start_time(pid)
    if started is None:
        return  # already gone
    with _lock:
        if not _reaper or _reaper[0].poll() is not None:
            _reaper[:] = [
                subprocess.Popen(
                    [sys.executable, "-m", "host_tools.reaper"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # a ^C for the harness is not for the reaper
                )
            ]
        pipe = _reaper[0].stdin
        assert pipe is not None
        try:
            pipe.write(f"{pid} {started} {int(stop_signal)}\n")
            pipe.flush()
        except OSError:  # the reaper is gone; the harness still stops what it started
            pass


def _alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def reap(
    watched: dict[int, tuple[int, int]],
    grace: float = GRACE,
    log: Callable[[str], None] | None = None,
) -> list[int]:
    """Stop every watched process that still runs; the pids that were signalled (each
    named to ``log`` with its command line first)."""
    hit = []
    for pid, (started, signum) in watched.items():
        if _alive(pid, started):
            if log is not None:
                log(f"reaper: stopping {pid} ({_command(pid)}), left running")
            try:
                os.kill(pid, signum)
                hit.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p, watched[p][0]) for p in hit):
        time.sleep(0.1)
    for pid in hit:
        if _alive(pid, watched[pid][0]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return hit


def main() -> int:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)  # it ends when the harness does, never before
    watched: dict[int, tuple[int, int]] = {}
    for line in sys.stdin:
        pid, started, signum = (int(x) for x in line.split())
        watched[pid] = (started, signum)
        if len(watched) > 1000:  # a long chaos run restarts its agent many times
            watched = {p: w for p, w in watched.items() if _alive(p, w[0])}

    def log(line: str) -> None:
        with contextlib.suppress(OSError):  # the harness's stderr may be gone with it
            print(line, file=sys.stderr, flush=True)

    reap(watched, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
