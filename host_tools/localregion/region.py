"""``LocalRegion``: a whole region on this machine (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from host_tools.localregion.errors import LocalRegionError
from host_tools.localregion.events import EventTail
from host_tools.localregion.processes import AgentProcess, DeskProcess, RegionalProcess
from host_tools.localregion.runner import Fieldterm, OnStep
from host_tools.mosquitto import Mosquitto, free_port

#: Short agent hold times for the demo and the tests (the defaults suit a real post).
QUICK_AGENT = {
    "FIELDTERM_AGENT__RETRY_INTERVAL": "2",
    "FIELDTERM_AGENT__RESULT_HOLD": "1.5",
    "FIELDTERM_AGENT__UNKNOWN_HOLD": "2",
    "FIELDTERM_AGENT__RESCAN_HOLD": "1.5",
}


def _samples(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class LocalRegion:
    """Provisioning, list, broker, regional processes, alert desk and agents of one region.

    ``workdir`` (made if missing; a new temporary directory when None, removed on close
    unless ``keep``) holds everything. ``terminal_host`` is the broker address written into
    the kiosks' bundles (``provision init --host``); ``bind`` the broker's listen address
    when it differs (the HIL's kiosks reach a loopback broker through a forward).
    ``terminal_args`` adds ``add-terminal`` options per terminal. ``tool`` runs the
    one-shot commands (default: :class:`Fieldterm`, a subprocess each, as a technician
    runs them; tests may pass one that runs them in-process).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        region: str = "central",
        terminals: Sequence[str] = ("kiosk-001",),
        records: int = 2000,
        seed: int = 7,
        sample_size: int = 20,
        terminal_host: str = "127.0.0.1",
        bind: str | None = None,
        port: int | None = None,
        terminal_args: Mapping[str, Sequence[str]] | None = None,
        on_step: OnStep | None = None,
        keep: bool = False,
        tool: Fieldterm | None = None,
    ):
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="fieldterm-region-", dir="/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)  # Mosquitto drops to the user 'mosquitto', which must traverse
        self.region = region
        self.terminals = tuple(terminals)
        self.records = records
        self.seed = seed
        self.sample_size = sample_size
        self.terminal_host = terminal_host
        self.bind = bind
        self.port = port or free_port()
        #: The broker's loopback listener for the regional service (broker-config --service-port).
        self.service_port = free_port()
        self.terminal_args = dict(terminal_args or {})
        self.keep = keep
        self.tool = tool or Fieldterm(cwd=self.dir, on_step=on_step)
        self.broker: Mosquitto | None = None
        self.regionals: list[RegionalProcess] = []  # running or not; see stop_regionals
        self._regional_runs = 0
        self.desk: DeskProcess | None = None
        self.agents: dict[str, AgentProcess] = {}
        self._stack = contextlib.ExitStack()

    # -- where things are ----------------------------------------------------------------
    @property
    def registry(self) -> Path:
        return self.dir / "registry"

    @property
    def passphrase(self) -> Path:
        return self.dir / "passphrase.txt"

    @property
    def broker_dir(self) -> Path:
        return self.dir / "broker"

    @property
    def desk_dir(self) -> Path:
        return self.dir / "desk"

    @property
    def regional_toml(self) -> Path:
        return self.broker_dir / "regional.toml"

    @property
    def sltd_db(self) -> Path:
        return self.broker_dir / "sltd.sqlite"

    def bundle(self, tid: str) -> Path:
        return self.dir / "bundles" / tid

    def terminal_toml(self, tid: str) -> Path:
        return self.bundle(tid) / "terminal.toml"

    @property
    def listed(self) -> list[list[str]]:
        """MRZ lines of documents on the list (from ``sltd generate --listed-sample``)."""
        return _samples(self.dir / "listed.jsonl")

    @property
    def unlisted(self) -> list[list[str]]:
        """MRZ lines of valid documents that are not on the list."""
        return _samples(self.dir / "unlisted.jsonl")

    # -- provisioning and the list ---------------------------------------------------------
    def provision_args(self, *argv: str) -> list[str]:
        """``provision --registry R --passphrase-file P ARGV``: a technician's command."""
        return [
            "provision", "--registry", str(self.registry),
            "--passphrase-file", str(self.passphrase), *argv,
        ]  # fmt: skip

    def provision_cmd(self, desc: str, *argv: str) -> str:
        """Run one ``fieldterm provision`` command on this region's registry."""
        return self.tool.run(desc, *self.provision_args(*argv))

    def provision(self, *, desk: bool = False) -> LocalRegion:
        """Region CA and keys, every terminal's bundle, the broker directory and, with
        ``desk``, the alert desk's directory."""
        self.passphrase.write_text("local region only, throwaway\n")
        self.passphrase.chmod(0o600)
        self.provision_cmd(
            "region CA and keys", "init", "--region", self.region,
            "--host", self.terminal_host, "--port", str(self.port),
        )  # fmt: skip
        for tid in self.terminals:
            self.add_terminal(tid)
        self.broker_config()
        if desk:
            self.provision_cmd(
                "alert desk", "alert-desk", "--out", str(self.desk_dir), "--host", "127.0.0.1"
            )
        return self

    def add_terminal(self, tid: str) -> Path:
        extra = list(self.terminal_args.get(tid, ()))
        self.provision_cmd(
            f"kiosk bundle {tid}", "add-terminal", tid, "--out", str(self.bundle(tid)), *extra
        )
        if tid not in self.terminals:
            self.terminals += (tid,)
        return self.bundle(tid)

    def broker_config(self) -> None:
        """(Re-)render the broker directory: config, ACL, CRL, regional.toml, terminals.json."""
        bind = ["--bind", self.bind] if self.bind else []
        self.provision_cmd(
            "broker directory", "broker-config", "--out", str(self.broker_dir), *bind,
            "--service-port", str(self.service_port),
        )  # fmt: skip

    def generate_list(self) -> LocalRegion:
        """A synthetic SLTD list behind the regional service, and document samples."""
        self.tool.run(
            f"synthetic SLTD list ({self.records:,} records)",
            "sltd", "generate", "--records", str(self.records), "--seed", str(self.seed),
            "--out", str(self.sltd_db), "--force", "--no-progress",
            "--listed-sample", str(self.dir / "listed.jsonl"),
            "--unlisted-sample", str(self.dir / "unlisted.jsonl"),
            "--sample-size", str(self.sample_size),
        )  # fmt: skip
        return self

    # -- services --------------------------------------------------------------------------
    def start_broker(self) -> Mosquitto:
        """Mosquitto as ``mosquitto -c broker/mosquitto.conf`` (the generated file); ready
        when it accepts connections. ``region.broker.stop()/start()`` restarts it."""
        if self.broker is None:
            conf = (self.broker_dir / "mosquitto.conf").read_text()
            self.broker = Mosquitto(self.broker_dir, port=self.port, conf_text=conf)
            self._stack.callback(self.broker.stop)
        self.broker.start()
        return self.broker

    def start_regional(
        self, *, env: Mapping[str, str] | None = None, wait: bool = True
    ) -> RegionalProcess:
        """One more ``fieldterm regional`` process (several share the queries); returns
        once it is ready (its subscription granted), unless ``wait`` is False."""
        n = self._regional_runs
        self._regional_runs += 1
        proc = RegionalProcess(
            self.regional_toml,
            self.dir / f"regional-{n}.health.json",
            self.dir / f"regional-{n}.log",
            env={**os.environ, "FIELDTERM_LOG_LEVEL": "INFO", **(env or {})},
            cwd=self.dir,
        )
        self.regionals.append(proc)
        self._stack.callback(proc.stop)
        proc.start()
        return proc.wait_ready() if wait else proc

    @property
    def regional(self) -> RegionalProcess:
        """The first regional process."""
        if not self.regionals:
            raise LocalRegionError("no regional process was started")
        return self.regionals[0]

    def stop_regionals(self) -> None:
        """SIGTERM every regional process (each drains its alerts and exits) and forget
        them; logs and health files stay."""
        for proc in self.regionals:
            proc.signal(signal.SIGTERM)
        for proc in self.regionals:
            proc.stop()
        self.regionals.clear()

    def regional_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.dir.glob("regional-*.log"))
        )

    def start_desk(self, *, wait: bool = True) -> DeskProcess:
        """The alert desk's reader; ready once it hears a batch from the region (so start
        it after a regional process)."""
        desk = DeskProcess(self.desk_dir / "desk.toml", self.desk_dir, cwd=self.dir)
        self.desk = desk
        self._stack.callback(lambda: desk.stop(grace=10))
        desk.start()
        return desk.wait_ready() if wait else desk

    def start_scanner(self, framing: str = "lines", transport: str = "pty") -> Any:
        """A scanner simulator (host_tools.sim); closed with the region."""
        from host_tools.sim.scanner import ScannerSimulator  # noqa: PLC0415

        sim = ScannerSimulator(framing, transport=transport).start()
        self._stack.callback(sim.close)
        return sim

    def start_agent(
        self,
        tid: str | None = None,
        *,
        signals: str = "console",
        display: str = "console",
        scanner: Any = None,
        env: Mapping[str, str] | None = None,
        quick: bool = True,
        wait: bool = True,
        link: bool = True,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> AgentProcess:
        """``fieldterm agent`` for terminal ``tid`` (the first by default) reading a new
        scanner simulator (or ``scanner``); ``wrap`` rewrites its command line (to run it
        inside a network namespace: ``host_tools.chaos.link.KioskLink.argv``). Its state directory and events file are under
        ``agents/<tid>/`` and survive a restart: call again after a stop or a kill to
        restart the same kiosk. Returns once ready (see :meth:`AgentProcess.wait_ready`)."""
        tid = tid or self.terminals[0]
        home = self.dir / "agents" / tid
        home.mkdir(parents=True, exist_ok=True)
        old = self.agents.get(tid)
        if old is not None and old.running():
            raise LocalRegionError(f"agent {tid} is still running")
        if scanner is None:
            scanner = old.scanner if old is not None else self.start_scanner()
        events = old.events if old is not None else EventTail(home / "events.jsonl")
        agent_env = {**os.environ, **(QUICK_AGENT if quick else {}), **(env or {})}
        agent_env.pop("NOTIFY_SOCKET", None)
        agent_env["PYTHONUNBUFFERED"] = "1"  # its console lines reach agent.log as shown
        agent = AgentProcess(
            [
                "agent", "--config", str(self.terminal_toml(tid)),
                "--signals", signals, "--display", display,
                "--scanner-port", scanner.path,
                "--state-dir", str(home / "state"), "--events-file", str(events.path),
            ],
            events, home / "agent.log", scanner, env=agent_env, cwd=home, wrap=wrap,
        )  # fmt: skip
        self.agents[tid] = agent
        if old is None:
            self._stack.callback(self._stop_agent, tid)
        agent.start()
        return agent.wait_ready(link=link) if wait else agent

    def _stop_agent(self, tid: str) -> None:
        self.agents[tid].stop()  # the latest start of this kiosk

    def state_dir(self, tid: str) -> Path:
        return self.dir / "agents" / tid / "state"

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything this region started, newest first; idempotent."""
        self._stack.close()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalRegion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
