"""Launch one QEMU guest with a hard timeout and watch its console log.

    spec = raspi3b_spec(image, kernel, initrd, dtb, rundir)
    with Guest(spec, timeout=300) as g:
        g.wait_for("HIL-READY", 120)
        ...

QEMU runs in its own process group (its guestfwd helpers, if any, are its children);
on exit or timeout only that group is signalled: never anything found by name.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from firmware.errors import FieldtermTimeout, OperationError

log = logging.getLogger(__name__)

QEMU = "qemu-system-aarch64"


@dataclass(frozen=True)
class GuestSpec:
    """Everything needed to start a guest: argv and the paths it uses."""

    machine: str
    argv: tuple[str, ...]
    console_log: Path
    scanner_socket: Path
    qtest_socket: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _common_kernel(kernel: Path, initrd: Path, cmdline: str) -> list[str]:
    return ["-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]


def virt_spec(
    image: Path,
    kernel: Path,
    initrd: Path,
    rundir: Path,
    *,
    guestfwd: list[tuple[int, int]],
    cmdline_extra: str = "",
) -> GuestSpec:
    """``-M virt``: PL011 console, 16550 scanner (``/dev/ttyS0``), restricted slirp.

    ``guestfwd`` maps guest ports on 10.0.2.100 to host ports on 127.0.0.1; each guest
    connection is forwarded by a socat child of QEMU, so a host server may restart.
    """
    scan = rundir / "scan.sock"
    netdev = "user,id=n0,restrict=on"
    for guest_port, host_port in guestfwd:
        netdev += f",guestfwd=tcp:10.0.2.100:{guest_port}-cmd:socat - TCP:127.0.0.1:{host_port}"
    cmdline = f"console=ttyAMA0 root=LABEL=root rw rootwait loglevel=4 {cmdline_extra}".strip()
    argv = [QEMU, "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024"]
    argv += ["-nographic", "-accel", "tcg", "-no-reboot"]
    argv += _common_kernel(kernel, initrd, cmdline)
    argv += ["-drive", f"if=none,file={image},format=raw,id=hd0,cache=unsafe"]
    argv += ["-device", "virtio-blk-device,drive=hd0"]
    argv += ["-netdev", netdev, "-device", "virtio-net-device,netdev=n0"]
    argv += ["-chardev", f"socket,id=scan,path={scan},server=on,wait=off"]
    argv += ["-device", "pci-serial,chardev=scan"]
    return GuestSpec("virt", tuple(argv), rundir / "console.log", scan)


def raspi3b_spec(
    image: Path,
    kernel: Path,
    initrd: Path,
    dtb: Path,
    rundir: Path,
    *,
    usb_net_guestfwd: list[tuple[int, int]] | None = None,
    cmdline_extra: str = "",
) -> GuestSpec:
    """``-M raspi3b``: scanner on the PL011 (``/dev/ttyAMA0``), console on the mini UART.

    The host reads and drives GPIO through qtest. ``usb_net_guestfwd`` adds a
    ``usb-net`` device on the dwc2 host controller with the same restricted slirp.
    """
    scan = rundir / "scan.sock"
    qtest = rundir / "qtest.sock"
    cmdline = (
        "console=ttyS1,115200 earlycon=uart8250,mmio32,0x3f215040 root=LABEL=root rw "
        f"rootwait loglevel=4 {cmdline_extra}"
    ).strip()
    argv = [QEMU, "-M", "raspi3b", "-m", "1G", "-display", "none", "-monitor", "none"]
    argv += ["-accel", "tcg", "-no-reboot"]
    argv += [*_common_kernel(kernel, initrd, cmdline), "-dtb", str(dtb)]
    argv += ["-drive", f"if=sd,format=raw,file={image},cache=unsafe"]
    argv += ["-chardev", f"socket,id=scan,path={scan},server=on,wait=off"]
    argv += ["-serial", "chardev:scan", "-serial", "stdio"]
    argv += ["-qtest", f"unix:{qtest},server=on,wait=off", "-qtest-log", "/dev/null"]
    if usb_net_guestfwd is not None:
        netdev = "user,id=n0,restrict=on"
        for guest_port, host_port in usb_net_guestfwd:
            netdev += f",guestfwd=tcp:10.0.2.100:{guest_port}-cmd:socat - TCP:127.0.0.1:{host_port}"
        argv += ["-netdev", netdev, "-device", "usb-net,netdev=n0"]
    return GuestSpec("raspi3b", tuple(argv), rundir / "console.log", scan, qtest)


class Guest:
    """A running QEMU guest. Context manager: always stops what it started."""

    def __init__(self, spec: GuestSpec, *, timeout: float):
        self.spec = spec
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.t0 = 0.0
        self.deadline = 0.0
        self.marks: dict[str, float] = {}

    def start(self) -> Guest:
        self.spec.console_log.parent.mkdir(parents=True, exist_ok=True)
        for sock in (self.spec.scanner_socket, self.spec.qtest_socket):
            if sock is not None:
                sock.unlink(missing_ok=True)
        out = self.spec.console_log.open("wb")
        log.info("qemu: %s", " ".join(self.spec.argv))
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.timeout
        try:
            self.proc = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        return self

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console(self) -> str:
        try:
            return self.spec.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, within: float, *, since: int = 0) -> re.Match[str]:
        """Wait until the console log (from offset ``since``) matches ``pattern``.

        Bounded by ``within`` seconds and by the guest's hard deadline; fails at once
        if QEMU exits first.
        """
        rx = re.compile(pattern)
        until = min(time.monotonic() + within, self.deadline)
        while True:
            m = rx.search(self.console(), since)
            if m:
                self.marks.setdefault(pattern, round(self.elapsed(), 1))
                return m
            if not self.running():
                raise OperationError(f"{self.spec.machine}: QEMU exited before {pattern!r}")
            if time.monotonic() > until:
                raise FieldtermTimeout(
                    f"{self.spec.machine}: no {pattern!r} on the console after "
                    f"{self.elapsed():.0f} s"
                )
            time.sleep(0.2)

    def wait_exit(self, within: float) -> int | None:
        """Wait for QEMU to exit (guest poweroff); None if it did not in time."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=max(0.0, min(within, self.remaining())))
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Terminate this guest's process group, then kill it if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=10)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
