"""``make hil-image``: the kiosk image for hardware-in-the-loop runs, cached by input hash.

Two cached layers under ``$FIELDTERM_HIL_CACHE`` (default ``/var/cache/fieldterm-hil``):

1. ``base-<key>/`` (:mod:`host_tools.hil.base`): bookworm arm64, kernel, initrd, dtb,
   and the pinned dependencies in ``/opt/fieldterm/venv``. Rebuilt only when the package
   lists, the pinned requirements or the build recipe change (about 7 min cold).
2. ``fw-<key>/``: the base plus the firmware installed as a kiosk installs it: a wheel
   of this checkout ``pip install``-ed offline into the venv (no host-only extras), the
   systemd unit from ``hardware/systemd/``, and the HIL glue units. The key hashes the
   base key and every packaged source file. Output: ``root.img`` (ext4, label ``root``).

Per run, :func:`inject` writes the run's provisioned ``/etc/fieldterm`` into a sparse copy
of ``root.img`` with ``debugfs -w`` (no loop mounts needed).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import OperationError, SetupError
from host_tools.hil.base import (
    GUEST_DIR,
    VENV,
    WHEELHOUSE,
    BaseImage,
    build_base,
    cache_root,
)
from host_tools.hil.chroot import Chroot, unmount_all

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = "2G"  # a power of two, as the raspi3b SD card model requires
AGENT_UNIT = "fieldterm-agent.service"
SOURCE_SUFFIXES = (".py", ".toml", ".json", ".txt", ".service", ".conf", ".rules")


@dataclass(frozen=True)
class KioskImage:
    """A finished firmware layer: the disk image plus kernel, initrd and dtb."""

    path: Path
    key: str
    base: BaseImage

    @property
    def root_img(self) -> Path:
        return self.path / "root.img"

    def manifest(self) -> dict[str, object]:
        return dict(json.loads((self.path / "manifest.json").read_text()))

    @property
    def has_agent_unit(self) -> bool:
        return bool(self.manifest().get("agent_unit"))


def _source_files() -> Iterator[Path]:
    for top in ("firmware", "host_tools", "hardware"):
        for path in sorted((REPO / top).rglob("*")):
            if (
                path.is_file()
                and path.suffix in SOURCE_SUFFIXES
                and "__pycache__" not in path.parts
            ):
                yield path
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            yield REPO / name


def firmware_key(base: BaseImage) -> str:
    h = hashlib.sha256(base.key.encode())
    for path in _source_files():
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@contextmanager
def cache_lock() -> Iterator[None]:
    """One image build at a time (``make test`` and ``make hil`` may overlap)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_wheel(dest: Path, log_file: Path) -> Path:
    """A wheel of this checkout, built from a clean copy (the tree is not touched)."""
    with tempfile.TemporaryDirectory(prefix="fieldterm-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for top in ("firmware", "host_tools"):
            shutil.copytree(REPO / top, src / top, ignore=ignore)
        for name in ("pyproject.toml", "README.md"):
            if (REPO / name).exists():
                shutil.copyfile(REPO / name, src / name)
        dest.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), str(src)],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
            )
    wheels = sorted(dest.glob("fieldterm-*.whl"))
    if not wheels:
        raise OperationError(f"no fieldterm wheel in {dest}")
    return wheels[-1]


def _copy_guest_files(sub: str, root: Path) -> None:
    for src in sorted((GUEST_DIR / sub).rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts:
            dst = root / src.relative_to(GUEST_DIR / sub)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if src.suffix in (".sh", ".py") else 0o644)


def _install_firmware(root: Path, wheel: Path, blog: Path) -> bool:
    """Install the wheel, the agent unit and the HIL glue; True if the unit exists."""
    dist = root / "opt/fieldterm/dist"
    dist.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, dist / wheel.name)
    unit_src = REPO / "hardware/systemd" / AGENT_UNIT
    has_unit = unit_src.exists()
    if has_unit:
        shutil.copyfile(unit_src, root / "etc/systemd/system" / AGENT_UNIT)
    firstboot = REPO / "hardware/firstboot"
    has_firstboot = (firstboot / "fieldterm-firstboot.sh").exists()
    if has_firstboot:
        # as its install note says: the script to /usr/local/lib/fieldterm, the unit enabled
        lib = root / "usr/local/lib/fieldterm"
        lib.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(firstboot / "fieldterm-firstboot.sh", lib / "fieldterm-firstboot.sh")
        (lib / "fieldterm-firstboot.sh").chmod(0o755)
        shutil.copyfile(
            firstboot / "fieldterm-firstboot.service",
            root / "etc/systemd/system/fieldterm-firstboot.service",
        )
    _copy_guest_files("fw", root)
    with Chroot(root, log_file=blog) as ch:
        ch.run(
            [
                f"{VENV}/bin/pip",
                "install",
                "--no-index",
                "--no-cache-dir",
                "--find-links",
                WHEELHOUSE,
                f"/opt/fieldterm/dist/{wheel.name}",
            ]
        )
        ch.run(["ln", "-sf", f"{VENV}/bin/fieldterm", "/usr/local/bin/fieldterm"])
        # the agent's unit runs /opt/fieldterm/.venv/bin/fieldterm
        ch.run(["ln", "-sfn", VENV.rsplit("/", 1)[1], "/opt/fieldterm/.venv"])
        # groups Raspberry Pi OS has and the agent's unit names (SupplementaryGroups)
        for group in ("gpio", "i2c"):
            ch.run(["sh", "-c", f"getent group {group} || groupadd --system {group}"])
        if has_firstboot:
            ch.run(["systemctl", "enable", "fieldterm-firstboot.service"])
        ch.run(
            ["systemctl", "enable", "fieldterm-hil-ready.service", "fieldterm-hil-probe.service"]
        )
        # the weekly e2scrub reaper costs 30 s of every emulated boot and checks nothing here
        ch.run(["systemctl", "mask", "e2scrub_reap.service"])
        if has_unit:
            ch.run(["systemctl", "enable", AGENT_UNIT])
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    return has_unit


def build_image(*, force: bool = False) -> KioskImage:
    """Build (or reuse) the base and the firmware layer for this checkout."""
    with cache_lock():
        base = build_base(force=force)
        _prune_bases(base)
        key = firmware_key(base)
        final = cache_root() / f"fw-{key}"
        if not force and (final / "manifest.json").exists():
            return KioskImage(final, key, base)
        if shutil.which("mke2fs") is None:
            raise SetupError("mke2fs is missing: apt-get install e2fsprogs")
        work = cache_root() / f"fw-{key}.part"
        if work.exists():
            unmount_all(work)
            shutil.rmtree(work)
        work.mkdir(parents=True)
        blog = work / "build.log"
        t0 = time.monotonic()
        print(f"hil-image: firmware layer {key} (log {blog})", flush=True)
        wheel = build_wheel(work / "dist", blog)
        root = work / "rootfs"
        subprocess.run(["cp", "-a", "--reflink=auto", str(base.rootfs), str(root)], check=True)
        try:
            has_unit = _install_firmware(root, wheel, blog)
        finally:
            unmount_all(work)
        subprocess.run(
            [
                "mke2fs",
                "-q",
                "-t",
                "ext4",
                "-L",
                "root",
                "-d",
                str(root),
                "-F",
                str(work / "root.img"),
                IMAGE_SIZE,
            ],
            check=True,
        )
        shutil.rmtree(root)
        seconds = round(time.monotonic() - t0, 1)
        manifest = {
            "key": key,
            "base": base.key,
            "wheel": wheel.name,
            "agent_unit": has_unit,
            "seconds": seconds,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        _prune(keep=final)
        print(f"hil-image: firmware layer {key} built in {seconds:.0f} s", flush=True)
        return KioskImage(final, key, base)


def _prune_bases(keep: BaseImage) -> None:
    """Base directories of older inputs (about 700 MB each) are of no further use."""
    for old in cache_root().glob("base-*"):
        if old.is_dir() and old != keep.path:
            unmount_all(old)
            shutil.rmtree(old, ignore_errors=True)


def _prune(keep: Path, count: int = 3) -> None:
    """Keep the newest few firmware layers (each holds a 2 GiB sparse image)."""
    layers = sorted(
        (p for p in cache_root().glob("fw-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in layers[count - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class GuestFile:
    """One file to write into a run's image copy."""

    path: str  # absolute guest path
    data: bytes
    mode: int = 0o644


def inject(image: Path, files: list[GuestFile], *, clock_epoch: float | None = None) -> None:
    """Write ``files`` into the ext4 ``image`` with ``debugfs -w`` (replacing old ones).

    ``clock_epoch`` sets the mtime of ``/usr/lib/clock-epoch``: systemd's floor for the
    guest clock on boards without an RTC.
    """
    with tempfile.TemporaryDirectory(prefix="fieldterm-inject-") as tmp:
        cmds: list[str] = []
        made: set[str] = set()
        for i, f in enumerate(files):
            local = Path(tmp) / f"f{i}"
            local.write_bytes(f.data)
            local.chmod(f.mode)
            parent, name = f.path.rsplit("/", 1)
            parts = [p for p in parent.split("/") if p]
            for depth in range(1, len(parts) + 1):
                d = "/" + "/".join(parts[:depth])
                if d not in made:
                    cmds.append(f"mkdir {d}")
                    made.add(d)
            cmds += [f"cd {parent or '/'}", f"rm {name}", f"write {local} {name}"]
            cmds.append(f"sif {f.path} mode 0{0o100000 | f.mode:o}")
        if clock_epoch is not None:
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(clock_epoch))
            cmds.append(f"sif /usr/lib/clock-epoch mtime {stamp}")
        script = Path(tmp) / "cmds"
        script.write_text("\n".join(cmds) + "\n")
        proc = subprocess.run(
            ["debugfs", "-w", "-f", str(script), str(image)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise OperationError(f"debugfs failed on {image}: {proc.stderr[-500:]}")
        for f in files:
            check = subprocess.run(
                ["debugfs", "-R", f"stat {f.path}", str(image)],
                capture_output=True,
                text=True,
                check=False,
            )
            if "Inode:" not in check.stdout:
                raise OperationError(f"debugfs: {f.path} was not written into {image}")


def copy_image(src: Path, dst: Path) -> None:
    """A sparse copy, so each boot starts from the same state."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m host_tools.hil.image",
        description="Build (or reuse from the cache) the HIL kiosk image: Debian bookworm "
        "arm64 with the firmware installed as on a kiosk. Prints the image directory.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.monotonic()
    img = build_image(force=args.force)
    print(f"hil-image: {img.path} (base {img.base.key}, {time.monotonic() - t0:.0f} s)")
    if not img.has_agent_unit:
        print(f"hil-image: note: hardware/systemd/{AGENT_UNIT} is missing; agent not enabled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
