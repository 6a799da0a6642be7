"""The region a fleet run talks to: a :class:`~host_tools.localregion.LocalRegion` with
many terminals, provisioned in this process.

``fieldterm provision add-terminal`` is run through ``firmware.cli.main`` in-process (a
Python start per terminal would cost more than the whole run); when the CLI has the bulk
``provision add-terminals`` it is used instead. Services (Mosquitto, the regional
processes) are real processes started by the region.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_tools.localregion import Fieldterm, LocalRegion, LocalRegionError


class InProcessFieldterm(Fieldterm):
    """``fieldterm ARGS`` through ``firmware.cli.main`` in this process."""

    def run(
        self, desc: str, *args: str, timeout: float = 600.0, input_text: str | None = None
    ) -> str:
        from firmware.cli import main  # noqa: PLC0415

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(args))
        if rc != 0:
            raise LocalRegionError(
                f"{desc} failed (exit {rc}): fieldterm {' '.join(args)}\n{err.getvalue()[-2500:]}"
            )
        return out.getvalue()


def terminal_ids(n: int, prefix: str = "kiosk") -> list[str]:
    width = max(5, len(str(n - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(n)]


def build_region(
    workdir: Path,
    terminals: int,
    *,
    records: int = 5000,
    sample_size: int = 500,
    seed: int = 7,
    say: Callable[[str], None] = lambda _s: None,
) -> LocalRegion:
    """Provision ``terminals`` kiosks and a synthetic list (not started yet)."""
    tids = terminal_ids(terminals)
    region = LocalRegion(
        workdir,
        terminals=(),
        records=records,
        seed=seed,
        sample_size=sample_size,
        tool=InProcessFieldterm(cwd=workdir),
    )
    region.passphrase.write_text("local region only, throwaway\n")
    region.passphrase.chmod(0o600)
    region.provision_cmd(
        "region CA and keys", "init", "--region", region.region,
        "--host", region.terminal_host, "--port", str(region.port),
    )  # fmt: skip
    for i, tid in enumerate(tids):
        region.add_terminal(tid)
        if (i + 1) % 100 == 0 or i + 1 == len(tids):
            say(f"provisioned {i + 1}/{len(tids)} kiosks")
    region.broker_config()
    region.generate_list()
    return region


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of ``pid`` (this process when None), in MB, from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def broker_pid(region: LocalRegion) -> int | None:
    proc: Any = getattr(region.broker, "proc", None)
    return proc.pid if proc is not None and proc.poll() is None else None
