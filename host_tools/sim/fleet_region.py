"""The region a fleet run talks to: a :class:`~host_tools.localregion.LocalRegion` with
many terminals, provisioned in this process.

The one-shot ``fieldterm provision`` commands (``init``, bulk ``add-terminals`` one call
per site, ``broker-config`` and ``broker-config --site-bridge``) and ``sltd generate`` run
through ``firmware.cli.main`` in this process, as a technician's commands would. Services
(the regional Mosquitto, the site brokers bridged to it over TLS, the regional processes)
are real processes started by the region.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
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


def build_region(
    workdir: Path,
    terminals: int,
    *,
    sites: int = 0,
    regionals: int = 1,
    records: int = 5000,
    sample_size: int = 500,
    seed: int = 7,
    say: Callable[[str], None] = lambda _s: None,
) -> LocalRegion:
    """Provision ``terminals`` kiosks (bulk ``add-terminals``, one call per site), the
    site brokers' directories and a synthetic list; nothing is started yet."""
    region = LocalRegion(
        workdir,
        terminals=terminals,
        sites=sites,
        regionals=regionals,
        records=records,
        seed=seed,
        sample_size=sample_size,
        tool=InProcessFieldterm(cwd=workdir),
    )
    t0 = time.monotonic()
    region.provision()
    say(f"provisioned {terminals} kiosks at {sites or 'no'} site(s) in "
        f"{time.monotonic() - t0:.1f} s")  # fmt: skip
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


def cpu_s(pid: int | None) -> float:
    """User plus system CPU seconds ``pid`` has used (0 if it is gone), from /proc."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role_pids(region: LocalRegion) -> dict[str, list[int]]:
    """The running processes of the region by role: broker, sites, regionals."""
    sites = []
    for b in region.site_brokers.values():
        proc: Any = getattr(b, "proc", None)
        if proc is not None and proc.poll() is None:
            sites.append(int(proc.pid))
    return {
        "broker": [p for p in [broker_pid(region)] if p is not None],
        "sites": sites,
        "regionals": [r.pid for r in region.regionals if r.running()],
    }
