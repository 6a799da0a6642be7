"""The kiosk agent as a real process imports only what the kiosk uses.

`fieldterm agent` runs from a provisioned bundle against a real Mosquitto (mutual TLS) and
reads a document from a pty, so the whole path (config, scanner, MRZ engine, sealing, MQTT,
outbox, audit, console signals) has run; at exit the process writes the names of the
modules it loaded. Modules a kiosk never needs must not be among them: host tools reached
through other subcommands' entry points (numpy, the provisioning and SLTD code), the other
subcommands' own modules, the installed entry-point table (importlib.metadata, with zipfile,
csv and email parsing), cryptography's general key serialisation (RSA, DSA, SSH) and X.509,
PostgreSQL. What that costs in resident memory is printed by `make demo`; here the
cause is pinned, not a figure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.mrz import make_td3
from host_tools.mosquitto import Mosquitto, free_port
from tests.provision.helpers import provision

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # upper bound of each wait for evidence, never a timing assertion

#: Runs the `fieldterm` entry point (firmware.cli:main) as the console script does, and
#: writes sys.modules when the process ends.
WRAPPER = """\
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from firmware.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: prefixes of modules the kiosk agent must not import
MUST_NOT_LOAD = (
    "host_tools",
    "numpy",
    "psycopg",
    "tomli_w",
    "cryptography.x509",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.dsa",
    "importlib.metadata",
    "importlib.resources",
    "firmware.mrz.cli",
    "firmware.mrz.summary",
    "firmware.scanner.cli",
    "firmware.client.cli",
    "firmware.signals.cli",
    "firmware.agent.audit_cli",
    "firmware.protocol.alerts",
    "paho.mqtt.publish",
    "paho.mqtt.subscribe",
)

#: and what it must (so the list above is not vacuously empty of a process that did nothing)
MUST_LOAD = (
    "firmware.agent.agent",
    "firmware.client.client",
    "firmware.protocol.session",
    "firmware.scanner.port",
    "firmware.mrz.repair",
    "paho.mqtt.client",
    "sqlite3",
)


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _wait_event(path: Path, pred, proc: subprocess.Popen, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for ev in _events(path):
            if pred(ev):
                return ev
        if proc.poll() is not None:
            raise AssertionError(f"agent exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"no {what} from the agent within {WAIT:.0f} s")


def _vm_rss_kb(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


@pytest.fixture
def region(tmp_path):
    pw = tmp_path / "pass.txt"
    pw.write_text("process import test\n")
    pw.chmod(0o600)  # provision refuses a passphrase file others may read
    reg = tmp_path / "registry"
    port = free_port()
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 0
    bundle = tmp_path / "kiosk"
    assert provision(reg, "add-terminal", "kiosk-001", "--out", str(bundle), passphrase=pw) == 0
    broker_dir = tmp_path / "broker"
    argv = ("broker-config", "--out", str(broker_dir), "--port", str(port))
    assert provision(reg, *argv, passphrase=pw) == 0
    conf = (broker_dir / "mosquitto.conf").read_text()
    with Mosquitto(broker_dir, port=port, conf_text=conf):
        yield bundle


def test_agent_process_loads_only_what_the_kiosk_uses(region, tmp_path):
    master, slave = os.openpty()
    events = tmp_path / "events.jsonl"
    modules = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIELDTERM_", "NOTIFY"))}
    env["FIELDTERM_PROTOCOL__QUERY_TIMEOUT"] = "0.5"  # no regional here: UNKNOWN comes fast
    argv = [sys.executable, "-c", WRAPPER, str(modules), "agent"]
    argv += ["--config", str(region / "terminal.toml"), "--signals", "console"]
    argv += ["--display", "console", "--scanner-port", os.ttyname(slave)]
    argv += ["--state-dir", str(tmp_path / "state"), "--events-file", str(events)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_event(events, lambda e: e["event"] == "ready", proc, "ready")
        _wait_event(events, lambda e: e["event"] == "link" and e["up"], proc, "broker link")
        os.write(master, ("\r\n".join(make_td3()) + "\r\n").encode())
        _wait_event(events, lambda e: e["event"] == "document" and e["valid"], proc, "document")
        _wait_event(
            events,
            lambda e: e["event"] == "state" and e["after"] == "unknown",
            proc,
            "UNKNOWN (no regional service answers)",
        )
        rss = _vm_rss_kb(proc.pid)
        print(f"agent VmRSS {rss} kB after one query")  # a figure for people, not asserted
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    loaded = json.loads(modules.read_text())
    for name in MUST_LOAD:
        assert name in loaded, f"{name} was not loaded: did the agent run the whole path?"
    unwanted = sorted(
        m for m in loaded if any(m == p or m.startswith(p + ".") for p in MUST_NOT_LOAD)
    )
    assert unwanted == []
