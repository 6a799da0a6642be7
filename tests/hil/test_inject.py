"""Writing a run's files into an ext4 image with debugfs (no mounts), as the rig does."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from host_tools.hil.image import GuestFile, inject
from tests.support.require import need


@pytest.fixture(autouse=True)
def _e2fsprogs():
    """debugfs and mke2fs, or a skip outside CI and a failure in it."""
    missing = [t for t in ("debugfs", "mke2fs") if shutil.which(t) is None]
    if missing:
        need("e2fsprogs", f"{', '.join(missing)} missing (make system-deps)")


def _debugfs(img, request: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", request, str(img)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def image(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/clock-epoch").write_text("")
    img = tmp_path / "root.img"
    subprocess.run(
        ["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(root), "-F", str(img), "16M"],
        check=True,
    )
    return img


def test_new_dirs_modes_replacement_and_clock(image):
    epoch = time.mktime((2031, 5, 6, 7, 8, 9, 0, 0, 0)) - time.timezone
    inject(
        image,
        [
            GuestFile("/etc/fieldterm/client.key", b"secret\n", 0o600),
            GuestFile("/etc/fieldterm/terminal.toml", b"[terminal]\n"),
            GuestFile("/etc/hosts", b"10.0.2.100 broker\n"),
        ],
        clock_epoch=epoch,
    )
    assert _debugfs(image, "cat /etc/fieldterm/client.key") == "secret\n"
    assert _debugfs(image, "cat /etc/hosts") == "10.0.2.100 broker\n"
    listing = _debugfs(image, "ls -l /etc/fieldterm")
    key_line = next(ln for ln in listing.splitlines() if "client.key" in ln)
    toml_line = next(ln for ln in listing.splitlines() if "terminal.toml" in ln)
    assert "100600" in key_line and "100644" in toml_line
    assert "2031" in _debugfs(image, "stat /usr/lib/clock-epoch").split("mtime:")[1].splitlines()[0]
