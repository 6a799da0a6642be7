"""The HIL base image: Debian bookworm arm64, kernel, small initrd, pinned Python deps.

Built once with debootstrap through qemu-user and cached under
``<cache>/base-<key>/`` where ``key`` hashes every input (this file, the package lists,
the pinned requirements and the guest files). Nothing prebuilt is downloaded: Debian
packages from the mirror and aarch64 wheels from PyPI only.

Contents of a finished base directory::

    rootfs/            the root file system (root-owned), venv in /opt/fieldterm/venv
    vmlinuz initrd.img the Debian arm64 kernel and a MODULES=list initrd
    raspi3b.dtb        Debian's bcm2837-rpi-3-b.dtb without the bluetooth serdev (frees
                       the PL011 for the scanner) and with /system/linux,revision set
    manifest.json      versions and step timings
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import OperationError, SetupError
from host_tools.hil.chroot import Chroot, ensure_binfmt, unmount_all

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
GUEST_DIR = HERE / "guest"
REQUIREMENTS = HERE / "kiosk-requirements.txt"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
VENV = "/opt/fieldterm/venv"
WHEELHOUSE = "/opt/fieldterm/wheels"
#: Pi 3 Model B rev 1.2 style code (new-style revision, BCM2837) for the emulated board.
RASPI_REVISION = 0xA02082

BASE_PACKAGES = (
    "python3",
    "python3-venv",
    "ca-certificates",
    "systemd-sysv",
    "udev",
    "kmod",
    "iproute2",
    "procps",
    "initramfs-tools",
    "gpiod",
)
KERNEL_PACKAGES = ("linux-image-arm64",)
# Enough to mount the root file system on both machines; everything else loads from it.
INITRD_MODULES = (
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "ext4",
    "mmc_block",
    "sdhci_iproc",
    "bcm2835",
)
WHEEL_PLATFORMS = (
    "manylinux2014_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_34_aarch64",
    "linux_aarch64",
)


def cache_root() -> Path:
    """``$FIELDTERM_HIL_CACHE`` or ``/var/cache/fieldterm-hil`` (outside the checkout)."""
    return Path(os.environ.get("FIELDTERM_HIL_CACHE", "/var/cache/fieldterm-hil"))


def mirror() -> str:
    return os.environ.get("FIELDTERM_HIL_MIRROR", DEFAULT_MIRROR)


def _code_digest(source: str) -> bytes:
    """The code's syntax tree: reformatting or comments do not change the key."""
    return ast.dump(ast.parse(source), annotate_fields=False).encode()


def base_key() -> str:
    """Hash of every input of the base image."""
    h = hashlib.sha256()
    h.update(json.dumps([SUITE, BASE_PACKAGES, KERNEL_PACKAGES, INITRD_MODULES]).encode())
    for func in (build_base, _configure_rootfs, _make_raspi_dtb, download_wheels):
        h.update(_code_digest(textwrap.dedent(inspect.getsource(func))))
    h.update(_code_digest((HERE / "chroot.py").read_text()))
    h.update(REQUIREMENTS.read_bytes())
    for path in sorted(GUEST_DIR.joinpath("base").rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(GUEST_DIR)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class BaseImage:
    """A finished, cached base directory."""

    path: Path
    key: str

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def raspi_dtb(self) -> Path:
        return self.path / "raspi3b.dtb"

    def manifest(self) -> dict[str, object]:
        return dict(json.loads((self.path / "manifest.json").read_text()))


def find_base() -> BaseImage | None:
    """The cached base for the current inputs, if it was built."""
    key = base_key()
    path = cache_root() / f"base-{key}"
    if (path / "manifest.json").exists():
        return BaseImage(path, key)
    return None


def _requirements() -> list[str]:
    lines = REQUIREMENTS.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def download_wheels(dest: Path, log_file: Path) -> None:
    """``pip download`` the pinned aarch64 wheels on the host (no sdists, no builds)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
    cmd += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    cmd += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for plat in WHEEL_PLATFORMS:
        cmd += ["--platform", plat]
    cmd += _requirements()
    with log_file.open("ab") as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900)


def _step(timings: dict[str, float], name: str, t0: float) -> float:
    now = time.monotonic()
    timings[name] = round(now - t0, 1)
    log.info("base: %s done in %.0f s", name, now - t0)
    print(f"hil-image: {name} {now - t0:.0f} s", flush=True)
    return now


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure_rootfs(root: Path) -> None:
    """Static guest configuration written before the kernel is installed."""
    _write(root / "etc/hostname", "kiosk\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 kiosk\n")
    _write(root / "etc/fstab", "LABEL=root / ext4 rw,noatime 0 0\n")
    # A small initrd: 30 s to build under qemu-user instead of 10 min for MODULES=most.
    conf = root / "etc/initramfs-tools/initramfs.conf"
    text = conf.read_text()
    lines = ["MODULES=list" if ln.startswith("MODULES=") else ln for ln in text.splitlines()]
    _write(conf, "\n".join(lines) + "\n")
    _write(root / "etc/initramfs-tools/modules", "\n".join(INITRD_MODULES) + "\n")
    # Keep daemons from starting inside the chroot during apt runs.
    _write(root / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    # systemd's clock floor: the rig sets this file's mtime to the host's time per run,
    # because raspi3b has no RTC and TLS needs a sane clock.
    _write(root / "usr/lib/clock-epoch", "")
    for src in sorted(GUEST_DIR.joinpath("base").rglob("*")):
        if src.is_file():
            dst = root / src.relative_to(GUEST_DIR / "base")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if os.access(src, os.X_OK) else 0o644)


def _make_raspi_dtb(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    subprocess.run(["fdtput", "-r", str(dst), "/soc/serial@7e201000/bluetooth"], check=True)
    subprocess.run(["fdtput", "-c", str(dst), "/system"], check=False)
    subprocess.run(
        ["fdtput", "-t", "x", str(dst), "/system", "linux,revision", f"{RASPI_REVISION:x}"],
        check=True,
    )


def build_base(*, force: bool = False) -> BaseImage:
    """Build (or return the cached) base image for the current inputs."""
    key = base_key()
    final = cache_root() / f"base-{key}"
    if not force and (final / "manifest.json").exists():
        return BaseImage(final, key)
    for tool in ("debootstrap", "fdtput", "chroot"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} is missing: run 'make system-deps'")
    ensure_binfmt()
    work = cache_root() / f"base-{key}.part"
    if work.exists():
        unmount_all(work)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root = work / "rootfs"
    blog = work / "build.log"
    timings: dict[str, float] = {}
    t_start = t = time.monotonic()
    print(f"hil-image: building base {key} in {work} (log {blog})", flush=True)

    download_wheels(work / "wheels", blog)
    t = _step(timings, "wheels", t)

    with blog.open("ab") as out:
        proc = subprocess.run(
            [
                "debootstrap",
                "--arch=arm64",
                "--variant=minbase",
                "--include=" + ",".join(BASE_PACKAGES),
                SUITE,
                str(root),
                mirror(),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=2400,
            check=False,
        )
    if proc.returncode != 0:
        unmount_all(work)
        raise OperationError(f"debootstrap failed ({proc.returncode}); see {blog}")
    t = _step(timings, "debootstrap", t)

    _configure_rootfs(root)
    with Chroot(root, log_file=blog) as ch:
        ch.run(["apt-get", "install", "-y", "--no-install-recommends", *KERNEL_PACKAGES])
        t = _step(timings, "kernel", t)
        ch.run(["systemctl", "enable", "systemd-networkd.service"])
        ch.run(["systemctl", "set-default", "multi-user.target"])
        shutil.copytree(work / "wheels", root / WHEELHOUSE.lstrip("/"))
        ch.run(["python3", "-m", "venv", VENV])
        ch.run(
            [
                f"{VENV}/bin/pip",
                "install",
                "--no-index",
                "--no-cache-dir",
                "--find-links",
                WHEELHOUSE,
                *_requirements(),
            ]
        )
        t = _step(timings, "venv", t)
        ch.run(["apt-get", "clean"])
    for junk in ("usr/sbin/policy-rc.d", "etc/resolv.conf"):
        (root / junk).unlink(missing_ok=True)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)

    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise OperationError(f"no kernel in {root / 'boot'}")
    kver = kernels[-1].name.removeprefix("vmlinuz-")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(root / f"boot/initrd.img-{kver}", work / "initrd.img")
    dtb = root / f"usr/lib/linux-image-{kver}/broadcom/bcm2837-rpi-3-b.dtb"
    _make_raspi_dtb(dtb, work / "raspi3b.dtb")
    t = _step(timings, "extract", t)
    timings["total"] = round(time.monotonic() - t_start, 1)
    manifest = {
        "key": key,
        "suite": SUITE,
        "kernel": kver,
        "packages": list(BASE_PACKAGES + KERNEL_PACKAGES),
        "requirements": _requirements(),
        "timings_s": timings,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    unmount_all(work)
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    print(f"hil-image: base {key} built in {timings['total']:.0f} s", flush=True)
    return BaseImage(final, key)
