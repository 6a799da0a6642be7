"""The reaper stops what a harness started when the harness is SIGKILLed, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from host_tools.reaper import GRACE, reap, start_time

HARNESS = textwrap.dedent(
    """
    import subprocess, sys, time
    from host_tools.reaper import watch
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    deaf = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True);"
        " time.sleep(300)"], start_new_session=True, stdout=subprocess.PIPE)
    deaf.stdout.readline()  # it ignores SIGTERM from now on
    watch(child.pid)
    watch(deaf.pid)
    print(child.pid, deaf.pid, flush=True)
    time.sleep(300)
    """
)


def _gone(pid: int, started: int | None) -> bool:
    return start_time(pid) != started


def test_a_killed_harness_children_are_stopped_the_deaf_one_killed():
    harness = subprocess.Popen([sys.executable, "-c", HARNESS], stdout=subprocess.PIPE, text=True)
    assert harness.stdout is not None
    child, deaf = (int(x) for x in harness.stdout.readline().split())
    started = {p: start_time(p) for p in (child, deaf)}
    assert None not in started.values()
    harness.kill()
    assert harness.wait(10) == -signal.SIGKILL
    end = time.monotonic() + GRACE + 10
    while not all(_gone(p, s) for p, s in started.items()) and time.monotonic() < end:
        time.sleep(0.1)
    assert _gone(child, started[child]), "the child outlived its harness"
    assert _gone(deaf, started[deaf]), "a child that ignores SIGTERM was not SIGKILLed"


def test_a_reused_pid_is_never_signalled():
    other = subprocess.Popen(["sleep", "300"])
    try:
        started = start_time(other.pid)
        assert started is not None
        # the watched process with this pid started at another time: not this one
        assert reap({other.pid: (started + 1, signal.SIGKILL)}, grace=0) == []
        assert other.poll() is None and start_time(other.pid) == started
        assert reap({other.pid: (started, signal.SIGTERM)}, grace=5) == [other.pid]
        assert other.wait(5) == -signal.SIGTERM
    finally:
        if other.poll() is None:
            other.kill()
        other.wait()


def test_start_time_of_a_missing_process_is_none():
    assert start_time(os.getpid()) is not None
    probe = subprocess.Popen(["true"])
    probe.wait()
    assert start_time(probe.pid) is None
