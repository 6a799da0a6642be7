"""HIL probe (runs in the guest): proves UART, GPIO and network plumbing without the agent.

Config (JSON file, written by the rig): ``{"port": "/dev/ttyAMA0", "toggle": 17,
"follow": 22, "button": 27, "tcp": "10.0.2.100:1883"}``; GPIO keys are optional.

- every line read on ``port`` toggles pin ``toggle`` and prints ``PROBE-LINE n len=L``
  (never the line itself);
- pin ``follow`` mirrors the input ``button`` (polled every 50 ms: host-driven inputs
  raise no interrupts in QEMU);
- ``tcp`` is connected once and ``PROBE-NET ok|fail`` printed;
- the line ``QUIT`` ends the probe and powers the guest off.
"""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import time
from typing import Any

import serial


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    cfg = json.loads(open(sys.argv[1]).read())
    gpio: Any = None
    if "toggle" in cfg:
        gpio = importlib.import_module("RPi.GPIO")  # rpi-lgpio on /dev/gpiochip0, guest only

        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)
        gpio.setup(cfg["toggle"], gpio.OUT, initial=gpio.LOW)
        gpio.setup(cfg["follow"], gpio.OUT, initial=gpio.LOW)
        gpio.setup(cfg["button"], gpio.IN)
        say(f"PROBE-GPIO {gpio.RPI_INFO['TYPE']}")
    if "tcp" in cfg:
        host, port = cfg["tcp"].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=10):
                say("PROBE-NET ok")
        except OSError as exc:
            say(f"PROBE-NET fail {exc}")
    ser = serial.Serial(cfg["port"], 9600, timeout=0.05)
    say("PROBE-READY")
    buf = b""
    lines = 0
    toggled = False
    followed = False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        buf += ser.read(256)
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.strip(b"\r")
            if line == b"QUIT":
                say("PROBE-DONE")
                if gpio is not None:
                    gpio.cleanup()
                subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
                return 0
            lines += 1
            if gpio is not None:
                toggled = not toggled
                gpio.output(cfg["toggle"], toggled)
            say(f"PROBE-LINE {lines} len={len(line)}")
        if gpio is not None:
            pressed = bool(gpio.input(cfg["button"]))
            if pressed != followed:
                followed = pressed
                gpio.output(cfg["follow"], pressed)
                say(f"PROBE-BUTTON {int(pressed)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
