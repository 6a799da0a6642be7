"""A size-limited tmpfs for the agent's state directory (root only), and a filler that
takes every free byte of it, so a test sees the real ENOSPC a full SD card gives."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.require import need


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """``where`` mounted as a tmpfs of ``size``; unmounted after."""
    if os.geteuid() != 0:
        need("root", "mounting a size-limited tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        need("root", f"mount -t tmpfs failed: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write zeros into ``directory/name`` until the file system says ENOSPC (down to
    single bytes, so no page is left)."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (64 << 10, 4096, 512, 1):
            for _ in range(1 << 16):  # bounded
                try:
                    if os.write(fd, bytes(size)) < size:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return path
