"""Run commands inside an arm64 root file system on the x86 host (qemu-user via binfmt).

    ensure_binfmt()
    with Chroot(rootfs) as ch:
        ch.run(["apt-get", "install", "-y", "linux-image-arm64"])

The chroot gets a clean environment (the host's pip and proxy variables are not passed
in, except the CA bundle location for apt), and every mount it made is undone on exit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from firmware.errors import OperationError, SetupError

log = logging.getLogger(__name__)

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_binfmt() -> None:
    """Make sure aarch64 binaries run on this host through qemu-user-static."""
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=True)
    entry = BINFMT_DIR / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        if shutil.which("update-binfmts") is None:
            raise SetupError("update-binfmts is missing: apt-get install binfmt-support")
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    if not entry.exists() or "enabled" not in entry.read_text():
        raise SetupError(f"{entry}: qemu-aarch64 is not registered (qemu-user-static missing?)")


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    """Undo every mount below ``root`` (also left-overs of an interrupted build)."""
    for point in mounts_under(root):
        if subprocess.run(["umount", point], check=False).returncode != 0:
            subprocess.run(["umount", "-l", point], check=False)


class Chroot:
    """Mount /proc, /sys, /dev and /dev/pts into ``root`` and run commands there."""

    def __init__(self, root: Path, *, log_file: Path | None = None):
        self.root = Path(root)
        self.log_file = log_file

    def __enter__(self) -> Chroot:
        r = self.root
        for sub in ("proc", "sys", "dev", "dev/pts"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["mount", "-t", "proc", "proc", str(r / "proc")], check=True)
            subprocess.run(["mount", "-t", "sysfs", "sys", str(r / "sys")], check=True)
            subprocess.run(["mount", "--bind", "/dev", str(r / "dev")], check=True)
            subprocess.run(["mount", "--bind", "/dev/pts", str(r / "dev/pts")], check=True)
        except subprocess.CalledProcessError:
            unmount_all(r)
            raise
        resolv = r / "etc/resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        shutil.copyfile("/etc/resolv.conf", resolv)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unmount_all(self.root)

    def run(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 1800
    ) -> float:
        """Run ``argv`` in the chroot; raise OperationError on failure. Returns seconds."""
        clean = {
            "PATH": GUEST_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
        }
        clean.update(env or {})
        cmd = ["chroot", str(self.root), "/usr/bin/env", "-i"]
        cmd += [f"{k}={v}" for k, v in clean.items()] + list(argv)
        t0 = time.monotonic()
        log.info("chroot: %s", " ".join(argv))
        out = self.log_file.open("ab") if self.log_file else None
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        finally:
            if out:
                out.close()
        if proc.returncode != 0:
            raise OperationError(
                f"chroot command failed ({proc.returncode}): {' '.join(argv)}; see {self.log_file}"
            )
        return time.monotonic() - t0
