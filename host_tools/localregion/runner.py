"""Run ``fieldterm`` subcommands the way a technician or an operator does.

:class:`Fieldterm` starts ``python -m firmware.cli ...`` with the interpreter running this
code, so a region made from a checkout uses that checkout. A failed command raises
:class:`LocalRegionError` with the command and the tail of its output; ``on_step`` (for
example the demo's progress printer) hears each finished step with its duration.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from host_tools.localregion.errors import LocalRegionError

OnStep = Callable[[str, float], None]


def fieldterm_argv(*args: str) -> list[str]:
    """The command line of ``fieldterm ARGS`` from this interpreter."""
    return [sys.executable, "-m", "firmware.cli", *args]


class Fieldterm:
    """Runs one-shot ``fieldterm`` commands; see the module docstring."""

    def __init__(self, cwd: Path | None = None, on_step: OnStep | None = None):
        self.cwd = cwd
        self.on_step = on_step

    def run(
        self, desc: str, *args: str, timeout: float = 600.0, input_text: str | None = None
    ) -> str:
        """Run ``fieldterm ARGS`` (``input_text`` on its stdin); returns its stdout,
        raises on a non-zero exit."""
        t0 = time.monotonic()
        try:
            r = subprocess.run(
                fieldterm_argv(*args),
                capture_output=True,
                text=True,
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                cwd=self.cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalRegionError(f"{desc}: fieldterm {args[0]} ran over {timeout:.0f} s") from exc
        if r.returncode != 0:
            raise LocalRegionError(
                f"{desc} failed (exit {r.returncode}): fieldterm {' '.join(args)}\n"
                f"{(r.stderr or r.stdout)[-2500:]}"
            )
        if self.on_step is not None:
            self.on_step(desc, time.monotonic() - t0)
        return r.stdout
