"""The shared :class:`~host_tools.localregion.LocalRegion` for tests.

One-shot ``fieldterm`` commands run in-process (provisioning a region per test would
otherwise start a Python process per command); services still run as real processes.
:class:`TestRegion` adds the names the tests use: ``root``, ``bundles``, ``procs``
(regional processes with their health files), ``cli`` (``provision`` in-process).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.cli import main as fieldterm_main
from host_tools.localregion import Fieldterm, LocalRegion, LocalRegionError

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))


class InProcessFieldterm(Fieldterm):
    """``fieldterm ARGS`` through ``firmware.cli.main`` in this process."""

    def run(
        self, desc: str, *args: str, timeout: float = 600.0, input_text: str | None = None
    ) -> str:
        out, err = io.StringIO(), io.StringIO()
        stdin = sys.stdin
        try:
            if input_text is not None:
                sys.stdin = io.StringIO(input_text)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = fieldterm_main(list(args))
        finally:
            sys.stdin = stdin
        if rc != 0:
            raise LocalRegionError(
                f"{desc} failed (exit {rc}): fieldterm {' '.join(args)}\n{err.getvalue()[-2500:]}"
            )
        return out.getvalue()


class TestRegion(LocalRegion):
    """The tests' view of the local region (provisioning in-process)."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: Path, **kw: Any):
        kw.setdefault("tool", InProcessFieldterm())
        super().__init__(workdir, **kw)

    @property
    def root(self) -> Path:
        return self.dir

    @property
    def bundles(self) -> dict[str, Path]:
        return {tid: self.bundle(tid) for tid in self.terminals}

    @property
    def procs(self) -> list[tuple[subprocess.Popen[bytes], Path]]:
        """Regional processes started since the last ``stop_all``, with health files."""
        return [(p.proc, p.health_file) for p in self.regionals if p.proc is not None]

    def start_regional(self, **kw: Any) -> tuple[subprocess.Popen[bytes], Path]:  # type: ignore[override]
        """One more regional process, once ready; returns (process, health file)."""
        p = super().start_regional(**kw)
        assert p.proc is not None
        return p.proc, p.health_file

    @staticmethod
    def health(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def logs(self) -> str:
        return self.regional_logs()

    def stop_all(self) -> None:
        self.stop_regionals()

    def cli(self, *argv: str) -> int:
        """``fieldterm provision ARGV`` on this region's registry, in-process with its
        output on this process's stdout and stderr (``capsys`` sees it); the exit code."""
        return fieldterm_main(self.provision_args(*argv))
