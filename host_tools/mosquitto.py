"""Run a real Mosquitto on 127.0.0.1 from a generated config (tests, demo, benchmarks, HIL).

    with Mosquitto(tmp_path, tls=pki.broker_tls, acl=ACL) as broker:
        ...connect to broker.port...
        broker.stop(); broker.start()   # same port: a restart

Only the process this object started is ever signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import FieldtermTimeout, OperationError
from host_tools.reaper import watch

#: What Mosquitto 2.0 logs (level information) when SIGHUP makes it re-read its config.
_RELOADED = b"Reloading config."


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    """What ``path`` holds past ``offset`` (all of it if it shrank: a new file)."""
    try:
        with path.open("rb") as fh:
            if fh.seek(0, os.SEEK_END) < offset:
                offset = 0
            fh.seek(offset)
            return fh.read()
    except OSError:
        return b""


def mosquitto_binary() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError(
        "mosquitto is not installed: run 'make system-deps' (apt-get install mosquitto)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    cafile: Path
    certfile: Path
    keyfile: Path
    crlfile: Path | None = None


class Mosquitto:
    """Run mosquitto with a generated config. ``conf_text`` replaces the generated one."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: BrokerTls | None = None,
        acl: str | None = None,
        port: int | None = None,
        persistence: bool = True,
        conf_text: str | None = None,
    ):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.acl = acl
        self.persistence = persistence
        self.conf_text = conf_text
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "mosquitto.log"

    def write_config(self) -> Path:
        conf = self.dir / "mosquitto.conf"
        if self.conf_text is not None:
            conf.write_text(self.conf_text)
            return conf
        lines = [
            "user root",
            "per_listener_settings false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_inflight_messages 0",
            "max_queued_messages 100000",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls:
            lines += [
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                "require_certificate true",
                "use_identity_as_username true",
                "tls_version tlsv1.2",
            ]
            if self.tls.crlfile:
                lines.append(f"crlfile {self.tls.crlfile}")
            lines.append("allow_anonymous false")
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_path = self.dir / "acl.txt"
            acl_path.write_text(self.acl)
            lines.append(f"acl_file {acl_path}")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self.write_config()
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "mosquitto.stderr", "ab"),
            start_new_session=True,
        )
        watch(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {self.logs()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def log_files(self) -> list[Path]:
        """Where this broker logs: every ``log_dest file`` of the config it runs, and its
        stderr (Mosquitto's default destination)."""
        conf = self.dir / "mosquitto.conf"
        text = conf.read_text() if conf.exists() else (self.conf_text or "")
        files = []
        for line in text.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[:2] == ["log_dest", "file"]:
                files.append(Path(parts[2].strip()))
        return [*files, self.dir / "mosquitto.stderr"]

    def reload(self, timeout: float = 10.0) -> None:
        """SIGHUP, then wait for the broker to log that it is reloading.

        Mosquitto re-reads the config, ACL, CRL and certificates (what `revoke` relies
        on) in its single-threaded main loop right after it logs ``Reloading config.``
        and before it handles any further packet, so once the line is in the log every
        packet sent afterwards meets the new settings. Raises :class:`FieldtermTimeout`
        with the log tail if no new such line appears within ``timeout`` seconds (the
        config must log ``information``, as both generated configs do).
        """
        if self.proc is None or self.proc.poll() is not None:
            raise OperationError(f"mosquitto is not running: {self.logs()[-2000:]}")
        self.write_config()
        files = self.log_files()
        before = {f: _size(f) for f in files}
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            if any(_RELOADED in _read_from(f, before[f]) for f in files):
                return
            if self.proc.poll() is not None:
                raise OperationError(
                    f"mosquitto exited with {self.proc.returncode} on reload: {self.logs()[-2000:]}"
                )
            if time.monotonic() >= deadline:
                raise FieldtermTimeout(
                    f"mosquitto logged no {_RELOADED.decode()!r} within {timeout} s of SIGHUP "
                    f"(looked in {', '.join(map(str, files))}); log tail: {self.logs()[-2000:]}"
                )
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def logs(self) -> str:
        parts = []
        for p in dict.fromkeys([self.log_path, *self.log_files()]):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
