"""The console as a process of a local region (the demo and the tests): provision its
certificate, fleet file and accounts, start ``fieldterm console``, wait until it listens.

Follows the readiness rule of :mod:`host_tools.localregion`: ready is the console's own
``console listening on`` line, bounded, failing with the log's tail if the process exits.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from host_tools.localregion import LocalRegion
from host_tools.localregion.processes import ServiceProcess, wait_for_evidence
from host_tools.mosquitto import free_port


class ConsoleProcess(ServiceProcess):
    name = "operator console"
    READY_LINE = "console listening on"

    def __init__(
        self, desk_dir: Path, port: int, health_glob: str, extra: tuple[str, ...] = (), **kw: Any
    ):
        self.desk_dir = desk_dir
        self.port = port
        super().__init__(
            [
                "console", "--config", str(desk_dir / "desk.toml"),
                "--listen", f"127.0.0.1:{port}", "--regional-health", health_glob, *extra,
            ],
            desk_dir / "console.log", **kw,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.desk_dir / "ca.crt"

    def is_ready(self) -> bool:
        return self.log.exists() and self.READY_LINE in self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> ConsoleProcess:
        wait_for_evidence(
            self.is_ready, "console listening", timeout=timeout, proc=self.proc, log=self.log
        )
        return self


def provision_console(
    region: LocalRegion, operators: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The console's certificate and fleet file in the region's desk directory, and one
    account per ``name -> role`` with a fresh random password; returns name -> password."""
    region.provision_cmd("console certificate", "console-cert", "--desk", str(region.desk_dir))
    out = {}
    for name, role in (operators or {"demo": "supervisor"}).items():
        pw = secrets.token_urlsafe(12)
        f = region.dir / f".pw-{name}"
        f.write_text(pw + "\n")
        f.chmod(0o600)
        region.tool.run(
            f"operator {name}", "provision", "operator", "add", name, "--role", role,
            "--desk", str(region.desk_dir), "--password-file", str(f),
        )  # fmt: skip
        f.unlink()
        out[name] = pw
    return out


def start_console(
    region: LocalRegion, *, port: int | None = None, extra: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> ConsoleProcess:  # fmt: skip
    """``fieldterm console`` for the region's desk, reading every regional health file;
    stopped with the region. Returns once it listens."""
    proc = ConsoleProcess(
        region.desk_dir, port or free_port(), str(region.dir / "regional-*.health.json"),
        extra, env={**os.environ, **(env or {})}, cwd=region.dir,
    )  # fmt: skip
    region._stack.callback(proc.stop)
    proc.start()
    return proc.wait_ready()
