"""The long-running parts of a local region, each a process this code started.

Every part follows the readiness rule of :mod:`host_tools.localregion`: :meth:`wait_ready`
polls the product's own evidence, bounded, and fails at once with the log's tail when the
process has exited. Only the process a part started is ever signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from host_tools.localregion.errors import LocalRegionError
from host_tools.localregion.events import EventTail
from host_tools.localregion.runner import fieldterm_argv
from host_tools.proc import stop_process
from host_tools.reaper import watch

READY_TIMEOUT = 60.0  # upper bound of a readiness wait on a loaded 2-core machine


def wait_for_evidence(
    evidence: Callable[[], Any],
    what: str,
    *,
    timeout: float = READY_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    """The readiness rule: return ``evidence()``'s first truthy value; fail at once if
    ``proc`` exits, or after ``timeout`` seconds, with the tail of ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        got = evidence()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise LocalRegionError(f"{what}: process exited with {proc.returncode}{_tail(log)}")
        if time.monotonic() > deadline:
            raise LocalRegionError(f"{what}: no sign of it after {timeout:.0f} s{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path | None, size: int = 2500) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- " + str(log) + " ---\n" + log.read_text(errors="replace")[-size:]


class ServiceProcess:
    """``fieldterm ARGS`` in its own session, output appended to ``log``."""

    name = "process"

    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stderr_log: Path | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ):
        self.args = list(args)
        self.wrap = wrap  # e.g. run inside a network namespace (``KioskLink.argv``)
        self.log = log
        self.stderr_log = stderr_log
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        out = self.log.open("ab")
        err = self.stderr_log.open("ab") if self.stderr_log else None
        try:
            argv = fieldterm_argv(*self.args)
            self.proc = subprocess.Popen(
                self.wrap(argv) if self.wrap else argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err if err is not None else subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
            watch(self.proc.pid)  # stopped even if the harness is SIGKILLed
        finally:
            out.close()
            if err is not None:
                err.close()
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LocalRegionError(f"{self.name} was not started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process only (SIGSTOP/SIGCONT/SIGKILL in fault tests)."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def kill(self) -> int | None:
        """SIGKILL, as a crash or a power cut would end it; returns the exit status."""
        if self.proc is None:
            return None
        self.signal(signal.SIGKILL)
        return self.proc.wait(10)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace``; idempotent. Returns the exit status."""
        if self.proc is None:
            return None
        return stop_process(self.proc, grace=grace)

    def logs(self) -> str:
        parts = [
            p.read_text(errors="replace") for p in (self.log, self.stderr_log) if p and p.exists()
        ]
        return "\n".join(parts)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RegionalProcess(ServiceProcess):
    """``fieldterm regional`` with its own health file. Ready when that file says
    ``"ready": true`` with this process's pid (the broker granted its subscription)."""

    name = "regional service"

    def __init__(self, config: Path, health_file: Path, log: Path, **kw: Any):
        super().__init__(
            ["regional", "--config", str(config), "--health-file", str(health_file)], log, **kw
        )
        self.health_file = health_file

    def start(self) -> RegionalProcess:
        self.health_file.unlink(missing_ok=True)  # an old file must not count as ready
        super().start()
        return self

    def health(self) -> dict[str, Any]:
        """The process's last health report ({} if none yet or unreadable)."""
        try:
            h = json.loads(self.health_file.read_text())
        except (OSError, ValueError):
            return {}
        return h if isinstance(h, dict) else {}

    def is_ready(self) -> bool:
        h = self.health()
        return self.proc is not None and h.get("pid") == self.proc.pid and h.get("ready") is True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> RegionalProcess:
        wait_for_evidence(
            self.is_ready,
            f"{self.name} ready (health {self.health_file.name})",
            timeout=timeout,
            proc=self.proc,
            log=self.log,
        )
        return self

    def wait_health(
        self, pred: Callable[[dict[str, Any]], Any], what: str, timeout: float = READY_TIMEOUT
    ) -> dict[str, Any]:
        """Wait until a health report from this process satisfies ``pred``."""

        def check() -> dict[str, Any] | None:
            h = self.health()
            return h if h.get("pid") == self.pid and pred(h) else None

        return wait_for_evidence(check, what, timeout=timeout, proc=self.proc, log=self.log)


class DeskProcess(ServiceProcess):
    """``fieldterm alerts --json``: alerts to ``alerts.jsonl``, its log to ``desk.log``.
    Ready when it reports ``receiving alert batches`` (it hears the region)."""

    name = "alert desk"
    READY_LINE = "receiving alert batches"

    def __init__(self, config: Path, directory: Path, **kw: Any):
        self.alerts_file = directory / "alerts.jsonl"
        super().__init__(
            ["alerts", "--config", str(config), "--json"],
            self.alerts_file,
            stderr_log=directory / "desk.log",
            **kw,
        )

    def is_ready(self) -> bool:
        assert self.stderr_log is not None
        return self.stderr_log.exists() and self.READY_LINE in self.stderr_log.read_text()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> DeskProcess:
        wait_for_evidence(
            self.is_ready, "alert desk hearing the region", timeout=timeout,
            proc=self.proc, log=self.stderr_log,
        )  # fmt: skip
        return self

    def alerts(self) -> list[dict[str, Any]]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(x) for x in self.alerts_file.read_text().splitlines() if x.strip()]

    def wait_alerts(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """At least ``count`` alerts (alerts come in fixed-rate batches, every 2 s)."""

        def enough() -> list[dict[str, Any]] | None:
            got = self.alerts()
            return got if len(got) >= count else None

        found = wait_for_evidence(
            enough, f"{count} alert(s) at the desk", timeout=timeout,
            proc=self.proc, log=self.stderr_log,
        )  # fmt: skip
        return list(found)


class AgentProcess(ServiceProcess):
    """``fieldterm agent`` reading ``scanner`` (a simulator's pty). Ready when its events
    file has the ``ready`` event of this start and then a ``link`` up (SUBACK)."""

    name = "kiosk agent"

    def __init__(self, args: Sequence[str], events: EventTail, log: Path, scanner: Any, **kw: Any):
        super().__init__(args, log, **kw)
        self.events = events
        self.scanner = scanner
        self.started_at = 0.0
        self.ready_event: dict[str, Any] = {}

    def start(self) -> AgentProcess:
        self._mark = self.events.mark()
        self.started_at = time.monotonic()
        super().start()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT, link: bool = True) -> AgentProcess:
        """Wait for this start's ``ready`` event and, unless ``link`` is False (a kiosk
        started with its broker down), the broker link up after it."""
        self.ready_event = self.events.wait(
            lambda e: e["event"] == "ready", timeout, start=self._mark,
            what="the agent's ready event", alive=self.running,
        )  # fmt: skip
        if link:
            self.events.wait(
                lambda e: e["event"] == "link" and e["up"], timeout, start=self._mark,
                what="the agent's broker link", alive=self.running,
            )  # fmt: skip
        return self

    def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], what: str, start: int,
        timeout: float = READY_TIMEOUT,
    ) -> dict[str, Any]:  # fmt: skip
        return self.events.wait(pred, timeout, start=start, what=what, alive=self.running)

    def rss_mb(self) -> dict[str, float]:
        """Resident and peak resident memory of the agent process, in MB."""
        out: dict[str, float] = {}
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return out
        for line in status.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"
                out[key] = round(int(line.split()[1]) / 1024, 1)
        return out
