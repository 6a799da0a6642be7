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
from host_tools.localregion.processes import (
    AgentProcess,
    DeskProcess,
    RegionalProcess,
    wait_for_evidence,
)
from host_tools.localregion.runner import Fieldterm, OnStep
from host_tools.mosquitto import Mosquitto, free_port

#: Ids of a region made with ``terminals=N``: ``kiosk-00001`` ... (add-terminals' naming).
BULK_PREFIX = "kiosk-"


def bulk_ids(count: int, start: int = 1) -> list[str]:
    """The ids ``add-terminals --prefix kiosk- --start START --count COUNT`` makes."""
    width = max(5, len(str(start + count - 1)))
    return [f"{BULK_PREFIX}{n:0{width}d}" for n in range(start, start + count)]


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
        terminals: Sequence[str] | int = ("kiosk-001",),
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
        sites: int = 0,
        regionals: int = 1,
        replica: bool = False,
    ):
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="fieldterm-region-", dir="/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)  # Mosquitto drops to the user 'mosquitto', which must traverse
        self.region = region
        #: ``terminals`` as a count: ids ``kiosk-00001`` ..., provisioned with add-terminals
        self.bulk = isinstance(terminals, int)
        self.terminals = (
            tuple(bulk_ids(terminals)) if isinstance(terminals, int) else tuple(terminals)
        )
        if sites < 0 or regionals < 1:
            raise LocalRegionError(
                f"sites={sites}, regionals={regionals}: need sites >= 0, regionals >= 1"
            )
        if sites > len(self.terminals):
            raise LocalRegionError(f"sites={sites} but only {len(self.terminals)} terminals")
        #: Site names ``site-01`` ... (``sites``), each with its own bridged broker.
        self.sites = tuple(f"site-{i + 1:02d}" for i in range(sites))
        #: The site of each terminal (contiguous blocks, as even as the count allows).
        self.site_of: dict[str, str] = {
            tid: self.sites[i * sites // len(self.terminals)]
            for i, tid in enumerate(self.terminals)
        } if sites else {}  # fmt: skip
        self.site_ports = {site: free_port() for site in self.sites}
        self.site_brokers: dict[str, Mosquitto] = {}
        self.regional_count = regionals
        self.replica = replica
        self.pg_primary: Any = None  # host_tools.sltd.pgcluster.PgCluster, with replica=True
        self.pg_replica: Any = None
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

    def site_dir(self, site: str) -> Path:
        """The broker directory of ``site`` (``broker-config --site-bridge``)."""
        return self.dir / "sites" / site

    def terminals_at(self, site: str) -> tuple[str, ...]:
        return tuple(t for t in self.terminals if self.site_of.get(t) == site)

    def regional_index_dir(self, n: int) -> Path:
        """Regional process ``n``'s own index directory (a postgresql:// store)."""
        return self.dir / f"regional-{n}.index"

    @property
    def store_url(self) -> str:
        """Where the list is written: the PostgreSQL primary with ``replica``, else the
        SQLite file."""
        return self.pg_primary.url if self.pg_primary is not None else str(self.sltd_db)

    @property
    def lookup_url(self) -> str:
        """What the regional processes read: the streaming replica with ``replica``."""
        return self.pg_replica.url if self.pg_replica is not None else str(self.sltd_db)

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
        if self.bulk and not self.terminal_args:
            self._add_bulk()
        else:
            for tid in self.terminals:
                self.add_terminal(tid)
        self.broker_config()
        for site in self.sites:
            self.site_broker_config(site)
        if desk:
            self.provision_cmd(
                "alert desk", "alert-desk", "--out", str(self.desk_dir), "--host", "127.0.0.1"
            )
        return self

    def _add_bulk(self) -> None:
        """``add-terminals`` once per site (or once): ids in contiguous blocks."""
        groups: list[tuple[str | None, tuple[str, ...]]] = [
            (s, self.terminals_at(s)) for s in self.sites
        ] or [(None, self.terminals)]
        for site, tids in groups:
            first = int(tids[0][len(BULK_PREFIX) :])
            self.provision_cmd(
                f"{len(tids)} kiosk bundles" + (f" at {site}" if site else ""),
                "add-terminals", "--count", str(len(tids)), "--prefix", BULK_PREFIX,
                "--start", str(first), "--out", str(self.dir / "bundles"), "--no-progress",
                *(["--site", site] if site else []),
            )  # fmt: skip

    def add_terminal(self, tid: str) -> Path:
        extra = list(self.terminal_args.get(tid, ()))
        site = self.site_of.get(tid)
        if site and "--site" not in extra:
            extra += ["--site", site]
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

    def site_broker_config(self, site: str) -> None:
        """``broker-config --site-bridge SITE``: the site's broker directory, bridged over
        TLS to the regional broker; the site's bundles now point at it."""
        self.provision_cmd(
            f"site broker {site}", "broker-config", "--out", str(self.site_dir(site)),
            "--site-bridge", site, "--upstream", f"127.0.0.1:{self.port}",
            "--host", "127.0.0.1", "--port", str(self.site_ports[site]),
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
        if self.replica:
            self._load_replicated_list()
        return self

    def _load_replicated_list(self) -> None:
        """A PostgreSQL primary holding the same list, and its streaming replica; returns
        once the replica has replayed the load (its list version is the primary's)."""
        from host_tools.sltd.generate import GeneratorSpec, ListGenerator  # noqa: PLC0415
        from host_tools.sltd.pgcluster import PgCluster, PgReplica  # noqa: PLC0415
        from host_tools.sltd.store import open_store  # noqa: PLC0415

        if self.pg_primary is None:
            self.pg_primary = self._stack.enter_context(PgCluster(self.dir / "pg-primary"))
        with open_store(self.pg_primary.url, create=True) as st:
            st.bulk_load(ListGenerator(GeneratorSpec(records=self.records, seed=self.seed)).rows())
            version = st.version()
        if self.pg_replica is None:
            self.pg_replica = self._stack.enter_context(
                PgReplica(self.pg_primary, self.dir / "pg-replica")
            )
        wait_for_evidence(
            lambda: self._replica_version() >= version,
            f"the replica at {self.pg_replica.url} replaying list version {version}",
        )

    def _replica_version(self) -> int:
        from host_tools.sltd.store import open_store  # noqa: PLC0415

        try:
            with open_store(self.pg_replica.url) as st:
                return int(st.version())
        except Exception:  # the schema itself may not be replayed yet
            return -1

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

    def start_sites(self) -> dict[str, Mosquitto]:
        """Every site's Mosquitto from its generated ``mosquitto.conf`` (start the regional
        broker first); returns once each accepts connections and the regional broker logs
        the site's bridge connected."""
        for site in self.sites:
            self.start_site(site)
        return self.site_brokers

    def start_site(self, site: str, *, wait: bool = True) -> Mosquitto:
        """Start (or restart after ``stop()``) the broker of ``site``; see
        :meth:`start_sites`."""
        broker = self.site_brokers.get(site)
        if broker is None:
            d = self.site_dir(site)
            conf = (d / "mosquitto.conf").read_text()
            broker = Mosquitto(d, port=self.site_ports[site], conf_text=conf)
            self.site_brokers[site] = broker
            self._stack.callback(broker.stop)
        mark = self.bridge_mark()
        broker.start()
        if wait:
            self.wait_bridges([site], mark)
        return broker

    def bridge_mark(self) -> int:
        """Where the regional broker's log ends now: :meth:`wait_bridges` looks after it."""
        return len(self._regional_broker_log())

    def _regional_broker_log(self) -> bytes:
        try:
            return (self.broker_dir / "data" / "mosquitto.log").read_bytes()
        except OSError:
            return b""

    def wait_bridges(
        self, sites: Sequence[str] | None = None, mark: int = 0, timeout: float = 60.0
    ) -> None:
        """Wait until the regional broker's log shows, after ``mark``, each site's bridge
        connected (``New client connected ... as bridge.SITE``): after a start, or after
        a restart of either broker (the bridge reconnects on its own)."""
        want = {s: f" as bridge.{s} (".encode() for s in (self.sites if sites is None else sites)}

        def connected() -> bool:
            log = self._regional_broker_log()[mark:]
            return all(w in log for w in want.values())

        wait_for_evidence(
            connected, f"bridge(s) of {', '.join(want)} connected to the regional broker",
            timeout=timeout, log=self.broker_dir / "data" / "mosquitto.log",
        )  # fmt: skip

    def start_regionals(
        self, count: int | None = None, *, env: Mapping[str, str] | None = None
    ) -> list[RegionalProcess]:
        """``count`` (default: the ``regionals`` option) more regional processes sharing
        the queries; returns them once each is ready."""
        # One after another, each ready before the next: processes opening the shared
        # replay/audit SQLite files at the same instant can fail "database is locked"
        # (PRAGMA journal_mode=WAL on a new file). LocalRegion's own start_regional: a
        # subclass may change what it returns.
        return [
            LocalRegion.start_regional(self, env=env) for _ in range(count or self.regional_count)
        ]

    def start(self) -> LocalRegion:
        """Broker, site brokers and the ``regionals`` regional processes, each ready (after
        :meth:`provision` and :meth:`generate_list`)."""
        self.start_broker()
        self.start_sites()
        self.start_regionals()
        return self

    def start_regional(
        self, *, env: Mapping[str, str] | None = None, wait: bool = True
    ) -> RegionalProcess:
        """One more ``fieldterm regional`` process (several share the queries); returns
        once it is ready (its subscription granted), unless ``wait`` is False. With
        ``replica`` it reads the streaming replica, with its own index directory."""
        n = self._regional_runs
        self._regional_runs += 1
        store_env: dict[str, str] = {}
        if self.pg_replica is not None:
            index_dir = self.regional_index_dir(n)
            index_dir.mkdir(exist_ok=True)
            store_env = {
                "FIELDTERM_REGIONAL__SLTD_DB": self.lookup_url,
                "FIELDTERM_REGIONAL__INDEX_DIR": str(index_dir),
            }
        proc = RegionalProcess(
            self.regional_toml,
            self.dir / f"regional-{n}.health.json",
            self.dir / f"regional-{n}.log",
            env={**os.environ, "FIELDTERM_LOG_LEVEL": "INFO", **store_env, **(env or {})},
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

    def start_scanner(
        self, framing: str = "lines", transport: str = "pty", link: Path | None = None
    ) -> Any:
        """A scanner simulator (host_tools.sim); closed with the region. ``link``: a
        symlink that follows the pty across replugs, as a udev name follows a USB scanner
        (without it a replugged pty may get another number, and a reader left retrying
        the old one can even open another region's scanner)."""
        from host_tools.sim.scanner import ScannerSimulator  # noqa: PLC0415

        sim = ScannerSimulator(framing, transport=transport, link=link).start()
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
            scanner = old.scanner if old is not None else self.start_scanner(link=home / "scanner")
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
