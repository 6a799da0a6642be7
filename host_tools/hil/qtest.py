"""A small client for QEMU's qtest protocol: read and drive BCM2835 GPIO pins.

QEMU is started with ``-qtest unix:PATH,server=on,wait=off -qtest-log /dev/null
-accel tcg``; this client connects to PATH and speaks one command per line
(``readl ADDR`` -> ``OK 0xVALUE``, ``writel ADDR VALUE`` -> ``OK``). Asynchronous
``IRQ raise/lower N`` lines (after ``irq_intercept_out``) are kept as hints only: the
kernel's pinctrl driver sets a level before switching a pin to output, so those events
are incomplete. Levels are polled from GPLEV0/1.

Host-driven inputs change GPLEV but raise no guest interrupt in QEMU 7.2: guest code
must poll its inputs for the HIL to exercise them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware.errors import FieldtermTimeout, OperationError

#: BCM2837 (Pi 3) GPIO block as the ARM cores see it.
GPIO_BASE = 0x3F200000
GPSET0 = GPIO_BASE + 0x1C
GPCLR0 = GPIO_BASE + 0x28
GPLEV0 = GPIO_BASE + 0x34
GPIO_QOM_PATH = "/machine/soc/peripherals/gpio"


def _bank(pin: int) -> tuple[int, int]:
    if not 0 <= pin < 54:
        raise ValueError(f"pin: BCM GPIO {pin} is outside 0..53")
    return 4 * (pin // 32), 1 << (pin % 32)


class QtestClient:
    """Blocking qtest client. One command at a time; thread-safe."""

    def __init__(self, path: Path, *, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self.events: list[tuple[float, str]] = []
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()

    def connect(self, deadline: float) -> None:
        """Connect, retrying until ``deadline`` (monotonic seconds)."""
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                s.connect(str(self.path))
            except OSError as exc:
                s.close()
                if time.monotonic() > deadline:
                    raise FieldtermTimeout(f"qtest socket {self.path}: {exc}") from exc
                time.sleep(0.2)
                continue
            self._sock = s
            return

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> QtestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _readline(self) -> str:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError as exc:
                raise FieldtermTimeout(f"qtest: no reply within {self.timeout} s") from exc
            if not chunk:
                raise OperationError("qtest: QEMU closed the socket")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", "replace").strip()

    def command(self, text: str) -> str:
        """Send one command and return its reply line (``OK ...``)."""
        if self._sock is None:
            raise OperationError("qtest: not connected")
        with self._lock:
            self._sock.sendall(text.encode("ascii") + b"\n")
            while True:
                line = self._readline()
                if line.startswith("IRQ"):
                    self.events.append((time.monotonic(), line))
                    continue
                if not line.startswith("OK"):
                    raise OperationError(f"qtest: {text!r} -> {line!r}")
                return line

    def readl(self, addr: int) -> int:
        reply = self.command(f"readl 0x{addr:x}")
        return int(reply.split()[1], 16)

    def writel(self, addr: int, value: int) -> None:
        self.command(f"writel 0x{addr:x} 0x{value:x}")

    def levels(self) -> int:
        """All 54 pin levels as one integer (bit N = BCM GPIO N)."""
        return self.readl(GPLEV0) | (self.readl(GPLEV0 + 4) << 32)

    def level(self, pin: int) -> bool:
        off, bit = _bank(pin)
        return bool(self.readl(GPLEV0 + off) & bit)

    def drive(self, pin: int, high: bool) -> None:
        """Drive a guest input pin as an external circuit would (GPSET0/GPCLR0)."""
        off, bit = _bank(pin)
        self.writel((GPSET0 if high else GPCLR0) + off, bit)


@dataclass
class PinTimeline:
    """Pin levels sampled over time: ``(t, levels)`` whenever a watched pin changed."""

    names: dict[int, str]
    samples: list[tuple[float, int]] = field(default_factory=list)

    def record(self, t: float, levels: int) -> None:
        mask = sum(1 << p for p in self.names)
        if not self.samples or (self.samples[-1][1] ^ levels) & mask:
            self.samples.append((t, levels))

    def level_at(self, pin: int, t: float) -> bool:
        value = 0
        for ts, levels in self.samples:
            if ts > t:
                break
            value = levels
        return bool(value >> pin & 1)

    def edges(self, pin: int, since: float = 0.0) -> list[tuple[float, bool]]:
        """Times at which ``pin`` changed (after ``since``), with its new level."""
        out: list[tuple[float, bool]] = []
        prev: bool | None = None
        for ts, levels in self.samples:
            now = bool(levels >> pin & 1)
            if prev is not None and now != prev and ts >= since:
                out.append((ts, now))
            prev = now
        return out

    def render(self) -> str:
        """One line per change: time and the watched pins by name."""
        rows = []
        for ts, levels in self.samples:
            pins = " ".join(f"{n}={levels >> p & 1}" for p, n in sorted(self.names.items()))
            rows.append(f"{ts:8.2f}s {pins}")
        return "\n".join(rows) + "\n"


class PinRecorder:
    """Poll GPLEV every ``interval`` seconds in a thread and fill a :class:`PinTimeline`."""

    def __init__(
        self,
        client: QtestClient,
        names: dict[int, str],
        *,
        interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        t0: float | None = None,
    ):
        self.client = client
        self.timeline = PinTimeline(names)
        self.interval = interval
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pin-recorder", daemon=True)

    def start(self) -> PinRecorder:
        self._thread.start()
        return self

    def now(self) -> float:
        return self.clock() - self.t0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                levels = self.client.levels()
            except (OperationError, OSError) as exc:
                self.error = exc
                return
            self.timeline.record(self.now(), levels)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
