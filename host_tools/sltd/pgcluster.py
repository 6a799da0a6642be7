"""A throwaway PostgreSQL cluster on 127.0.0.1 (benchmarks and tests of the PG store).

    with PgCluster(tmp_dir) as pg:
        url = pg.url          # postgresql://postgres@127.0.0.1:PORT/postgres
        with PgReplica(pg, tmp_dir / "replica") as rep:   # a streaming hot standby
            rep.url           # read-only; pg_is_in_recovery() is true there

initdb runs in a temp directory; as root, the server runs as the ``postgres`` system user
(``runuser``), since PostgreSQL refuses to run as root. Only the process started here is
stopped (``pg_ctl stop`` on its own data directory).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
from pathlib import Path

from firmware.errors import SetupError
from host_tools.mosquitto import free_port
from host_tools.reaper import watch


def pg_bindir() -> Path:
    found = shutil.which("initdb")
    if found:  # a link in PATH (Debian links only some tools): the directory of them all
        return Path(found).resolve().parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not cands:
        raise SetupError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(cands[-1]).parent


class PgCluster:
    """initdb + pg_ctl start on a free port; ``settings`` go into postgresql.conf."""

    def __init__(self, workdir: str | Path, settings: dict[str, str] | None = None):
        self.dir = Path(workdir)
        self.data = self.dir / "data"
        self.port = free_port()
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "jit": "off",
            **(settings or {}),
        }
        self.bindir = pg_bindir()
        self._as_postgres = os.geteuid() == 0
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        argv = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if res.returncode:
            raise SetupError(f"{cmd[0]} failed ({res.returncode}): {res.stderr[-1500:]}")

    def start(self) -> PgCluster:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
            # the postgres user must be able to reach the directory
            for parent in self.dir.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"port = {self.port}\n")
            for k, v in self.settings.items():
                fh.write(f"{k} = {v}\n")
        return self.resume()

    def resume(self) -> PgCluster:
        """Start the server on the existing data directory (after :meth:`stop`)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        # pg_ctl forks the server away: watch the postmaster for a fast shutdown (SIGINT)
        # if this process dies without stopping it
        watch(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
        return self

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: ``fast`` (clean) or ``immediate`` (as a crash: the next
        start recovers from the WAL)."""
        if self.started:
            self.started = False
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PgReplica(PgCluster):
    """A streaming replica of a running ``primary``: ``pg_basebackup -R`` (which writes
    ``standby.signal`` and the ``primary_conninfo`` to stream from) into its own data
    directory, started on its own free port as a hot standby.

    The primary needs ``wal_level = replica`` (PostgreSQL's default) and a replication
    entry in pg_hba.conf (initdb's default has one for 127.0.0.1). A replica serves reads
    only; NOTIFY is not relayed to it, so readers poll (the SLTD change log's version)."""

    def __init__(self, primary: PgCluster, workdir: str | Path):
        super().__init__(workdir, {"hot_standby": "on"})
        self.primary = primary

    def start(self) -> PgReplica:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as fh:  # the copied file: our own port
            fh.write(f"port = {self.port}\n")
            for k, v in self.settings.items():
                fh.write(f"{k} = {v}\n")
        self.resume()
        return self

    def __enter__(self) -> PgReplica:
        return self.start()
