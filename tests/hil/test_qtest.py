"""The qtest client and pin timeline against a scripted qtest peer on a real unix socket."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from firmware.errors import OperationError
from host_tools.hil.qtest import GPCLR0, GPLEV0, GPSET0, PinTimeline, QtestClient


class FakeQemu:
    """Speaks the qtest line protocol over GPIO registers, like QEMU's bcm2835_gpio."""

    def __init__(self, path: Path):
        self.levels = 0
        self.commands: list[str] = []
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.srv.accept()
        try:
            self.loop(conn.makefile("rwb", buffering=0))
        except OSError:
            pass  # the client went away
        finally:
            conn.close()

    def loop(self, f) -> None:
        for raw in f:
            cmd = raw.decode().strip()
            self.commands.append(cmd)
            parts = cmd.split()
            if parts[0] == "readl":
                addr = int(parts[1], 16)
                value = self.levels & 0xFFFFFFFF if addr == GPLEV0 else self.levels >> 32
                f.write(b"IRQ raise 22\n")  # async events may come before a reply
                f.write(f"OK 0x{value:08x}\n".encode())
            elif parts[0] == "writel":
                addr, value = int(parts[1], 16), int(parts[2], 16)
                shift = 32 if addr in (GPSET0 + 4, GPCLR0 + 4) else 0
                if addr in (GPSET0, GPSET0 + 4):
                    self.levels |= value << shift
                else:
                    self.levels &= ~(value << shift)
                f.write(b"OK\n")
            else:
                f.write(b"FAIL unknown command\n")


@pytest.fixture
def qemu_and_client(tmp_path):
    path = tmp_path / "qtest.sock"
    fake = FakeQemu(path)
    client = QtestClient(path, timeout=5)
    client.connect(time.monotonic() + 5)
    yield fake, client
    client.close()
    fake.thread.join(timeout=5)
    fake.srv.close()


def test_drive_and_read_pins_in_both_banks(qemu_and_client):
    fake, qt = qemu_and_client
    qt.drive(27, True)
    qt.drive(40, True)
    assert fake.commands[:2] == ["writel 0x3f20001c 0x8000000", "writel 0x3f200020 0x100"]
    assert qt.level(27) and qt.level(40) and not qt.level(17)
    assert qt.levels() == (1 << 27) | (1 << 40)
    qt.drive(27, False)
    assert fake.commands[-1] == "writel 0x3f200028 0x8000000"
    assert qt.levels() == 1 << 40
    assert qt.events and qt.events[0][1] == "IRQ raise 22"


def test_error_reply_raises(qemu_and_client):
    _, qt = qemu_and_client
    with pytest.raises(OperationError, match="FAIL"):
        qt.command("bogus")


def test_pin_out_of_range_is_refused(qemu_and_client):
    _, qt = qemu_and_client
    with pytest.raises(ValueError, match="pin: BCM GPIO 54"):
        qt.drive(54, True)


def test_timeline_keeps_only_changes_of_watched_pins():
    tl = PinTimeline({17: "green", 22: "red"})
    tl.record(0.0, 0)
    tl.record(0.1, 1 << 5)  # unwatched pin: no sample
    tl.record(0.2, 1 << 17)
    tl.record(0.3, 1 << 17)
    tl.record(0.4, 0)
    tl.record(0.5, 1 << 22)
    assert [t for t, _ in tl.samples] == [0.0, 0.2, 0.4, 0.5]
    assert tl.edges(17) == [(0.2, True), (0.4, False)]
    assert tl.edges(17, since=0.3) == [(0.4, False)]
    assert tl.level_at(17, 0.25) and not tl.level_at(17, 0.45)
    assert tl.level_at(22, 9.0)
    assert "green=1 red=0" in tl.render().splitlines()[1]
