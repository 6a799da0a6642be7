"""The region on the host for one HIL run: the shared LocalRegion, made for a kiosk in QEMU.

``fieldterm provision`` makes the CA, the kiosk's bundle and the broker config; the
broker (Mosquitto, mTLS) listens on 127.0.0.1 only; ``fieldterm sltd generate`` makes a
small synthetic list; ``fieldterm regional`` answers sealed queries. The guest reaches
the broker at 10.0.2.100:<port> through QEMU's restricted slirp ``guestfwd`` to the same
port on the host's 127.0.0.1: the bundle names 10.0.2.100 (as a kiosk names a broker behind
NAT), the broker binds to loopback and the regional service connects over loopback.
Everything else here (status monitor, guest disk reader) is the HIL's own.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.errors import OperationError
from host_tools.localregion import LocalRegion

REGION = "central"
TERMINAL = "kiosk-hil"
GUEST_BROKER_HOST = "10.0.2.100"


#: The HIL checks the kiosk's hardware against the four online answers and UNKNOWN, so its
#: regional publishes no offline list (a key file that does not exist disables publishing):
#: without a list, a timeout or an outage is UNKNOWN, which is what the scenarios drive.
#: The offline list's own path is tested end to end on the host
#: (tests/e2e/test_offline_system.py, make demo).
NO_OFFLINE_LIST = {"FIELDTERM_OFFLINE__LIST_KEY": "/nonexistent/hil-publishes-no-offline-list.key"}


def hil_region(directory: Path, scanner_port: str, *, desk: bool = False) -> LocalRegion:
    """The region of one run, provisioned and with its list: one kiosk whose bundle names
    the broker behind the guest's forward and the guest's own scanner port."""
    region = LocalRegion(
        directory,
        region=REGION,
        terminals=(TERMINAL,),
        records=2000,
        seed=7,
        sample_size=10,
        terminal_host=GUEST_BROKER_HOST,
        bind="127.0.0.1",
        terminal_args={TERMINAL: ["--scanner-port", scanner_port, "--site", "hil"]},
    )
    return region.provision(desk=desk).generate_list()


class StatusMonitor:
    """Subscribes (as the regional identity, which the ACL lets read status) to the
    kiosk's retained status topic and keeps every payload with its arrival time."""

    def __init__(self, region: LocalRegion):
        self.region = region
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        srv = region.broker_dir
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
        self.client.connect("127.0.0.1", self.region.port, keepalive=30)
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
