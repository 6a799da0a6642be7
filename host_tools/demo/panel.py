"""The supervisor's annunciator in the demo: the real panel code (firmware/annunciator/)
under the MicroPython unix port, with its recording hardware port, provisioned like a
real panel (``fieldterm provision add-annunciator``) for the demo kiosk's lane.

The panel prints what its lights and buzzer do (``lane 1 kiosk-001 call``, ``buzz 1``);
:class:`DemoPanel` follows those lines so the player can print the lane's light and chime
next to the kiosk's screen (``panel | lane 1 kiosk-001: CALL, fast blink, chiming``) and
press the panel's acknowledge button (a ``press`` line on its stdin). It runs only when
the ``micropython`` command that ``make setup`` installs is in the virtualenv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from host_tools.proc import stop_process

REPO = Path(__file__).resolve().parents[2]
MP_LIB = Path(sys.prefix) / "lib" / "micropython"

#: The panel's lights by lane state (docs/annunciator.md "Patterns").
LIGHTS = {
    "idle": "steady on",
    "call": "fast blink",
    "acked": "slow blink",
    "out_of_service": "off",
    "down": "double flash",
}
#: The chime sounds 150 ms every 2 s while a lane calls: "chiming" if heard this recently.
CHIME_WINDOW = 2.5

_LANE = re.compile(r"^lane (\d+) (\S+) (\w+)$")


def micropython() -> Path | None:
    """The unix port's binary and its libraries from ``make setup``, or None."""
    exe = Path(sys.executable).parent / "micropython"
    if exe.is_file() and (MP_LIB / "umqtt" / "robust.py").is_file():
        return exe
    return None


class DemoPanel:
    """A running panel process and the lane states it last printed."""

    def __init__(self, exe: Path, panel_dir: Path, log: Path):
        env = {**os.environ, "MICROPYPATH": f".frozen:{MP_LIB}:{REPO / 'firmware'}"}
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [str(exe), "-m", "annunciator.unix", str(panel_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lanes: dict[int, tuple[str, str]] = {}  # n -> (kiosk id, state)
        self.last_buzz = float("-inf")
        self.connects = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="panel", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            text = line.strip()
            with self._cond:
                m = _LANE.match(text)
                if m:
                    self.lanes[int(m.group(1))] = (m.group(2), m.group(3))
                elif text == "buzz 1":
                    self.last_buzz = time.monotonic()
                elif text.startswith("mqtt connected "):
                    self.connects += 1
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _shows(self, cond: str) -> bool:
        if cond == "connected":
            return self.connects > 0
        if cond == "call":  # the light and its chime (printed just after the light)
            return self.state(1) == cond and self._chiming()
        return self.state(1) == cond

    def _chiming(self) -> bool:
        return time.monotonic() - self.last_buzz < CHIME_WINDOW

    def wait(self, cond: str, timeout: float) -> bool:
        """Until lane 1 shows ``cond`` (a state, or ``connected``); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._shows(cond):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def state(self, n: int) -> str:
        return self.lanes.get(n, ("", "starting"))[1]

    def view(self, n: int = 1) -> str:
        """``lane 1 kiosk-001: CALL, fast blink, chiming``."""
        with self._cond:
            tid, state = self.lanes.get(n, ("?", "starting"))
            chiming = self._chiming() and state == "call"
        light = LIGHTS.get(state, "?")
        return f"lane {n} {tid}: {state.upper()}, {light}{', chiming' if chiming else ''}"

    def press(self) -> None:
        """The supervisor presses the panel's acknowledge button."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("press\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        stop_process(self.proc, grace=5.0)
        self._reader.join(timeout=5)
        self.log.close()
