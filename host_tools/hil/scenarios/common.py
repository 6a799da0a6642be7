"""What every HIL scenario shares: the run directory, booting a guest, the scanner link."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware.errors import FieldtermTimeout, OperationError
from host_tools.hil.image import GuestFile, KioskImage, copy_image, inject
from host_tools.hil.qemu import Guest, raspi3b_spec, virt_spec


class ScenarioFailed(OperationError):
    """An assertion of a scenario did not hold."""


def check(cond: bool, message: str) -> None:
    if not cond:
        raise ScenarioFailed(message)


@dataclass
class Context:
    """One scenario run: where its files go and what it found out."""

    name: str
    image: KioskImage
    rundir: Path
    timeout_scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"hil:   {self.name}: {text}", flush=True)

    def disk(self, files: list[GuestFile]) -> Path:
        """A fresh sparse copy of the kiosk image with this run's files written in."""
        img = self.rundir / "root.img"
        copy_image(self.image.root_img, img)
        inject(img, files, clock_epoch=time.time())
        return img

    def raspi3b(
        self,
        files: list[GuestFile],
        *,
        timeout: float,
        cmdline_extra: str = "",
        usb_net: list[tuple[int, int]] | None = None,
    ) -> Guest:
        base = self.image.base
        spec = raspi3b_spec(
            self.disk(files),
            base.kernel,
            base.initrd,
            base.raspi_dtb,
            self.rundir,
            usb_net_guestfwd=usb_net,
            cmdline_extra=cmdline_extra,
        )
        return Guest(spec, timeout=timeout * self.timeout_scale)

    def virt(
        self,
        files: list[GuestFile],
        *,
        timeout: float,
        guestfwd: list[tuple[int, int]],
        cmdline_extra: str = "",
    ) -> Guest:
        base = self.image.base
        spec = virt_spec(
            self.disk(files),
            base.kernel,
            base.initrd,
            self.rundir,
            guestfwd=guestfwd,
            cmdline_extra=cmdline_extra,
        )
        return Guest(spec, timeout=timeout * self.timeout_scale)


class ScannerLink:
    """The host end of the guest's scanner UART (a QEMU chardev unix socket)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock: socket.socket | None = None

    def connect(self, within: float = 30.0) -> ScannerLink:
        until = time.monotonic() + within
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.path))
            except OSError as exc:
                s.close()
                if time.monotonic() > until:
                    raise FieldtermTimeout(f"scanner socket {self.path}: {exc}") from exc
                time.sleep(0.2)
                continue
            self.sock = s
            return self

    def send(self, data: bytes, *, pace: float = 0.0) -> None:
        """Write bytes to the UART; ``pace`` seconds between 64-byte chunks if set."""
        if self.sock is None:
            raise OperationError("scanner link not connected")
        if pace <= 0:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), 64):
            self.sock.sendall(data[i : i + 64])
            time.sleep(pace)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait_until(cond: Callable[[], bool], within: float, what: str, step: float = 0.1) -> float:
    """Poll ``cond`` until true (bounded); returns the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > within:
            raise ScenarioFailed(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - t0
