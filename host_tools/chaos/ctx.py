"""What a chaos fault acts on (:class:`Ctx`), shared by the scenario modules.

A fault is a generator: it acts, then yields how many seconds to wait before its next
step; the officer simulator steps it while it waits for the kiosk. Every process exit the
harness causes is recorded here (:meth:`Ctx.kill_agent`, :meth:`Ctx.stop_agent`), so that
any other exit is counted as a crash.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.chaos.link import KioskLink
from host_tools.localregion import LocalRegion

Fault = Iterator[float]  # yields seconds to wait before its next step


@dataclass
class Ctx:
    """What a fault acts on."""

    region: LocalRegion
    tid: str
    link: KioskLink | None
    rng: random.Random
    partition_s: float
    log: Callable[[str], None]
    fault_s: float | None = None  # overrides the length of timed faults (short test runs)
    notes: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)  # the fault parameters of this run
    regional_env: dict[str, str] = field(default_factory=dict)  # e.g. the PostgreSQL store
    agent_env: dict[str, str] = field(default_factory=dict)  # e.g. libfaketime
    pg: Any = None  # the PgCluster behind the regional, with --store pg
    crashes: list[str] = field(default_factory=list)  # exits nobody asked for
    expected_exit: set[int] = field(default_factory=set)  # pids the harness stopped or killed
    audit_notes: list[str] = field(default_factory=list)  # e.g. where a cut truncated a log
    recovered_at: float | None = None  # monotonic time a fault said service is back
    expect: dict[str, Any] = field(default_factory=dict)  # what a scenario's verify checks
    run_index: int = 0  # which run of the scenario this is
    fs: Any = None  # the LazyFS under the state directory (power-cut)
    known_audit_problems: set[str] = field(default_factory=set)  # reported once
    audit_touched: set[int] = field(default_factory=set)  # line offsets corrupt-files hit

    @property
    def agent(self) -> Any:
        return self.region.agents[self.tid]

    @property
    def state_dir(self) -> Path:
        return self.region.state_dir(self.tid)

    def seconds(self, default: float) -> float:
        """A timed fault's length: ``default``, or ``--fault-s`` when given."""
        return default if self.fault_s is None else min(default, self.fault_s)

    def restart_agent(self, *, wait: bool = False) -> None:
        self.check_agent_exit()
        wrap = self.link.argv if self.link is not None else None
        self.region.start_agent(self.tid, wait=wait, wrap=wrap, env=self.agent_env or None)

    def kill_agent(self) -> None:
        """SIGKILL the agent (a crash or a power cut), recorded as ours."""
        if self.agent.running():
            self.expected_exit.add(self.agent.pid)
        self.agent.kill()

    def stop_agent(self) -> None:
        """An orderly stop (SIGTERM), recorded as ours."""
        if self.agent.running():
            self.expected_exit.add(self.agent.pid)
        self.agent.stop()

    def check_agent_exit(self) -> bool:
        """Whether the agent has exited; an exit the harness did not cause is a crash."""
        proc = self.agent.proc
        if proc is None or proc.poll() is None:
            return False
        if proc.pid not in self.expected_exit:
            self.expected_exit.add(proc.pid)  # counted once
            self.crashes.append(f"agent pid {proc.pid} exited {proc.returncode}")
            self.log(f"    CRASH: agent pid {proc.pid} exited with {proc.returncode}")
        return True

    def check_regionals(self) -> None:
        """A regional process that exited without the harness stopping it is a crash."""
        for r in self.region.regionals:
            proc = r.proc
            if proc is None or proc.poll() is None or proc.pid in self.expected_exit:
                continue
            self.expected_exit.add(proc.pid)
            self.crashes.append(f"regional pid {proc.pid} exited {proc.returncode}")
            self.log(f"    CRASH: regional pid {proc.pid} exited with {proc.returncode}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"    {text}")

    def param(self, text: str) -> None:
        """A fault parameter (printed in the table)."""
        self.params.append(text)
        self.note(text)
