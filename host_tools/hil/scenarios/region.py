"""A whole region on the host for one HIL run, made with the project's own tools.

``fieldterm provision`` makes the CA, the kiosk's bundle and the broker config; the
broker (Mosquitto, mTLS) listens on 127.0.0.1 only; ``fieldterm sltd generate`` makes a
small synthetic list; ``fieldterm regional`` answers sealed queries. The guest reaches
the broker at 10.0.2.100:<port> through QEMU's restricted slirp ``guestfwd`` to the same
port on the host's 127.0.0.1: the bundle names 10.0.2.100 (as a kiosk names a broker behind
NAT), the broker binds to loopback and the regional service connects over loopback.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.errors import OperationError
from host_tools.mosquitto import free_port, mosquitto_binary
from host_tools.proc import stop_process

REGION = "central"
TERMINAL = "kiosk-hil"
GUEST_BROKER_HOST = "10.0.2.100"
BIN = Path(sys.executable).parent / "fieldterm"


def fieldterm(*args: str, cwd: Path, timeout: float = 300) -> str:
    """Run a ``fieldterm`` subcommand on the host; raise with its output on failure."""
    proc = subprocess.run(
        [str(BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise OperationError(
            f"fieldterm {' '.join(args[:3])} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout)[-800:]}"
        )
    return proc.stdout


def _documents(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Region:
    """Provisioned files of one run: the registry, the kiosk's bundle (which goes onto the
    guest's SD card) and the broker/regional directory."""

    dir: Path
    scanner_port: str
    broker_port: int = 0
    listed: list[list[str]] = field(default_factory=list)
    clean: list[list[str]] = field(default_factory=list)

    @property
    def reg(self) -> Path:
        return self.dir / "registry"

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def srv(self) -> Path:
        return self.dir / "srv"

    @property
    def desk(self) -> Path:
        return self.dir / "desk"

    @property
    def _provision(self) -> list[str]:
        pw = self.dir / "passphrase.txt"
        return ["provision", "--registry", str(self.reg), "--passphrase-file", str(pw)]

    def add_desk(self) -> Path:
        """The alert desk's directory (only agent-virt has a desk). The desk sits on the
        host, so it reaches the broker over loopback."""
        fieldterm(
            *self._provision, "alert-desk", "--out", str(self.desk), "--host", "127.0.0.1",
            cwd=self.dir,
        )  # fmt: skip
        return self.desk

    def provision(self, *, with_list: bool = True) -> Region:
        self.dir.mkdir(parents=True, exist_ok=True)
        pw = self.dir / "passphrase.txt"
        pw.write_text("hil-run-only\n")
        pw.chmod(0o600)
        common = self._provision
        self.broker_port = free_port()
        fieldterm(
            *common, "init", "--region", REGION, "--host", GUEST_BROKER_HOST,
            "--port", str(self.broker_port), cwd=self.dir,
        )  # fmt: skip
        fieldterm(
            *common, "add-terminal", TERMINAL, "--out", str(self.bundle),
            "--scanner-port", self.scanner_port, "--site", "hil", cwd=self.dir,
        )  # fmt: skip
        fieldterm(
            *common, "broker-config", "--out", str(self.srv), "--bind", "127.0.0.1", cwd=self.dir
        )
        if with_list:
            fieldterm(
                "sltd",
                "generate",
                "--records",
                "2000",
                "--seed",
                "7",
                "--no-progress",
                "--out",
                str(self.srv / "sltd.sqlite"),
                "--listed-sample",
                str(self.dir / "listed.jsonl"),
                "--unlisted-sample",
                str(self.dir / "clean.jsonl"),
                "--sample-size",
                "10",
                cwd=self.dir,
            )
            self.listed = _documents(self.dir / "listed.jsonl")
            self.clean = _documents(self.dir / "clean.jsonl")
        return self


class HostService:
    """A host process of this run (broker, regional); only it is ever signalled."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path):
        self.name, self.argv, self.log, self.cwd = name, argv, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HostService:
        out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=10, after_kill=10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def start_broker(region: Region) -> HostService:
    conf = region.srv / "mosquitto.conf"
    svc = HostService(
        "mosquitto",
        [mosquitto_binary(), "-c", str(conf)],
        region.dir / "mosquitto.stdout",
        region.dir,
    )
    svc.start()
    _wait_port(region.broker_port, svc)
    return svc


def start_regional(region: Region) -> HostService:
    svc = HostService(
        "regional",
        [str(BIN), "regional", "--config", str(region.srv / "regional.toml")],
        region.dir / "regional.log",
        region.dir,
    )
    return svc.start()


def _wait_port(port: int, svc: HostService, within: float = 20) -> None:
    import socket  # noqa: PLC0415

    until = time.monotonic() + within
    while time.monotonic() < until:
        if not svc.running():
            raise OperationError(f"{svc.name} exited; see {svc.log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise OperationError(f"{svc.name} not listening on 127.0.0.1:{port} after {within} s")


class StatusMonitor:
    """Subscribes (as the regional identity, which the ACL lets read status) to the
    kiosk's retained status topic and keeps every payload with its arrival time."""

    def __init__(self, region: Region):
        self.region = region
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        srv = region.srv
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="hil-status-monitor",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(
            ca_certs=str(srv / "ca.crt"),
            certfile=str(srv / "regional.crt"),
            keyfile=str(srv / "regional.key"),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(f"ft/v1/{REGION}/status/{TERMINAL}", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"raw": msg.payload.decode("utf-8", "replace")}
        with self._lock:
            self.messages.append((time.monotonic(), payload))

    def start(self) -> StatusMonitor:
        self.client.connect("127.0.0.1", self.region.broker_port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def latest(self) -> dict[str, Any]:
        with self._lock:
            return self.messages[-1][1] if self.messages else {}

    def states(self) -> list[str]:
        with self._lock:
            return [str(m.get("state")) for _, m in self.messages]


def audit_records(log_text: str) -> list[dict[str, Any]]:
    """The audit log's JSON lines (the file is one JSON object per line)."""
    out = []
    for raw in log_text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def read_guest_file(image: Path, path: str) -> str:
    """A file from a powered-off guest's ext4 image, as the kiosk would find it on its next
    boot: ``e2fsck`` first replays the journal (what an fsync made durable may be only in
    the journal after a power cut; debugfs alone does not replay it), then ``debugfs``."""
    fsck = subprocess.run(
        ["e2fsck", "-f", "-y", str(image)], capture_output=True, text=True, check=False
    )
    if fsck.returncode >= 4:  # 1 and 2: errors corrected
        raise OperationError(f"e2fsck {image} failed ({fsck.returncode}): {fsck.stdout[-400:]}")
    proc = subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True, check=False
    )
    return proc.stdout
