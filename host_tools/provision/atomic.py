"""Atomic file and directory writes: nothing a reader sees is ever half-written.

A file is written to a temporary name in the same directory, flushed with ``fsync`` and
renamed over the target. A directory (a bundle) is filled under a temporary name beside
its target and renamed as a whole once every file is on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from firmware.errors import SetupError


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (vfat on an SD card) refuse a directory fsync
        pass
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically with ``mode`` (set before any byte is written)."""
    target = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def check_writable(directory: Path, what: str) -> None:
    """Fail with an actionable message when ``directory`` cannot take new files."""
    if not directory.exists():
        raise SetupError(
            f"{what} {directory} does not exist: create it (or mount the SD card) and retry"
        )
    if not directory.is_dir():
        raise SetupError(f"{what} {directory} is not a directory: name a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SetupError(
            f"{what} {directory} is not writable: check that it is mounted read-write "
            f"and that you may write there (try sudo, or another directory)"
        )


@contextlib.contextmanager
def staged_dir(target: Path, mode: int = 0o700, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success rename it to ``target``.

    ``target`` must not exist, or be an empty directory (rename(2) replaces that), unless
    ``replace`` is true: then an existing directory is swapped out and removed afterwards.
    On any error the temporary directory is removed and ``target`` is untouched.
    """
    target = Path(target)
    check_writable(target.parent, "the parent directory")
    if target.exists() and not replace:
        if not target.is_dir() or any(target.iterdir()):
            raise SetupError(
                f"{target} already exists and is not empty: choose a new directory "
                "or remove the old one first"
            )
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, mode)
        yield tmp
        for child in tmp.iterdir():
            if child.is_file():
                with child.open("rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old: Path | None = None
        if replace and target.exists() and (not target.is_dir() or any(target.iterdir())):
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.rename(target, old)
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
