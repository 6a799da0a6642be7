"""A power-cut file system: a FUSE pass-through that forgets what was never synced.

In the style of LazyFS (a FUSE file system from the crash-consistency literature), built on
`mfusepy` (ctypes bindings for libfuse 3). Every operation is passed through at once to a
*live* copy of the directory, so the program on top sees an ordinary file system. Beside
it the process keeps a model of what a real disk would hold after a power loss:

- a file's **data** becomes durable only at ``fsync``/``fdatasync`` of that file (its whole
  content as it is then);
- a directory's **entries** (creations, renames, unlinks in it) become durable only at an
  ``fsync`` of that directory -- the strict POSIX reading, stricter than ext4's defaults.
  A file renamed over another without a directory fsync is, after a cut, the old file;
  one created and fsynced but whose directory was never fsynced is gone.

At a **cut** (``cut`` on the control socket) the durable image is written over the backing
directory and every later operation fails with EIO; the caller then unmounts, and the next
mount starts from exactly what survived. A clean ``sync`` writes the live copy instead
(an orderly shutdown). Files are identified by the live copy's inode, so a rename keeps a
file's durable data and a new file at an old name does not inherit it.

    python -m host_tools.chaos.lazyfs BACKING MOUNTPOINT --control SOCKET

:class:`LazyFS` (below) starts and drives that process; ``tests/chaos/test_lazyfs.py``
shows each rule with real syscalls through the kernel's FUSE driver.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from host_tools.reaper import watch

READY_TIMEOUT = 20.0


class _Model:
    """The durable image: data per file and entries per directory, keyed by a file id."""

    def __init__(self, live: Path):
        self.live = live
        self.lock = threading.RLock()
        self.ids: dict[int, int] = {}  # live inode -> file id
        self.kinds: dict[int, str] = {}  # file id -> "d" | "f"
        self.data: dict[int, bytes] = {}  # file id -> durable content
        self.entries: dict[int, dict[str, int]] = {}  # dir id -> durable name -> file id
        self._next = 1
        self.root = self._snapshot(live)

    def _fid(self, st: os.stat_result) -> int:
        fid = self.ids.get(st.st_ino)
        if fid is None:
            fid = self.ids[st.st_ino] = self._next
            self._next += 1
            self.kinds[fid] = "d" if stat.S_ISDIR(st.st_mode) else "f"
        return fid

    def _snapshot(self, d: Path) -> int:
        """Everything present at mount is durable."""
        fid = self._fid(d.stat())
        names: dict[str, int] = {}
        for child in sorted(d.iterdir()):
            st = child.lstat()
            if stat.S_ISDIR(st.st_mode):
                names[child.name] = self._snapshot(child)
            elif stat.S_ISREG(st.st_mode):
                cid = self._fid(st)
                self.data[cid] = child.read_bytes()
                names[child.name] = cid
        self.entries[fid] = names
        return fid

    def fid_of(self, real: str) -> int | None:
        try:
            return self._fid(os.lstat(real))
        except FileNotFoundError:
            return None

    def forget(self, real: str) -> None:
        """``real`` is about to lose a name: if it was the last, its inode may be reused."""
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            return
        if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode):
            self.ids.pop(st.st_ino, None)

    def sync_file(self, fd: int) -> None:
        st = os.fstat(fd)
        fid = self.ids.get(st.st_ino)
        if fid is None:
            return  # unlinked and forgotten: nothing can name it after a cut
        chunks: list[bytes] = []
        pos = 0
        rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)  # ``fd`` may be write-only
        try:
            while True:
                b = os.pread(rfd, 1 << 20, pos)
                if not b:
                    break
                chunks.append(b)
                pos += len(b)
        finally:
            os.close(rfd)
        self.data[fid] = b"".join(chunks)

    def sync_dir(self, real: str) -> None:
        fid = self.fid_of(real)
        if fid is None:
            return
        names = {}
        for name in os.listdir(real):
            st = os.lstat(os.path.join(real, name))
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                names[name] = self._fid(st)
        self.entries[fid] = names

    def write_image(self, target: Path) -> dict[str, int]:
        """Replace ``target``'s contents with the durable image; counts of what it holds."""
        _empty(target)
        counts = {"files": 0, "dirs": 0, "bytes": 0}

        def put(dir_id: int, at: Path) -> None:
            for name, fid in self.entries.get(dir_id, {}).items():
                if self.kinds.get(fid) == "d":
                    (at / name).mkdir()
                    counts["dirs"] += 1
                    put(fid, at / name)
                else:
                    blob = self.data.get(fid, b"")
                    (at / name).write_bytes(blob)
                    counts["files"] += 1
                    counts["bytes"] += len(blob)

        put(self.root, target)
        _fsync_tree(target)
        return counts


def _empty(d: Path) -> None:
    for child in d.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _fsync_tree(d: Path) -> None:
    for root, _dirs, files in os.walk(d):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_operations(live: Path, model: _Model) -> Any:
    """The mfusepy Operations for a pass-through to ``live`` that feeds ``model``."""
    import mfusepy  # noqa: PLC0415 -- only the chaos harness needs libfuse

    FuseOSError = mfusepy.FuseOSError

    class Ops(mfusepy.Operations):
        use_ns = True

        def __init__(self) -> None:
            self.cut = False

        def _real(self, path: str) -> str:
            if self.cut:
                raise FuseOSError(errno.EIO)
            return os.path.join(str(live), path.lstrip("/"))

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = os.fstat(fh) if fh is not None else os.lstat(self._real(path))
            keys = ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_ino")
            out: dict[str, Any] = {k: getattr(st, k) for k in keys}
            for k in ("st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
                out[k.removesuffix("_ns")] = getattr(st, k)
            return out

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._real(path))]

        def access(self, path: str, amode: int) -> int:
            if not os.access(self._real(path), amode):
                raise FuseOSError(errno.EACCES)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            sv = os.statvfs(self._real(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                    "f_files", "f_flag", "f_frsize", "f_namemax")  # fmt: skip
            return {k: getattr(sv, k) for k in keys}

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self._real(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.chown(self._real(path), uid, gid)
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            if times is None:
                os.utime(self._real(path))
            else:
                os.utime(self._real(path), ns=times)
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self._real(path), mode)
            return 0

        def rmdir(self, path: str) -> int:
            real = self._real(path)
            with model.lock:
                model.forget(real)
                os.rmdir(real)
            return 0

        def unlink(self, path: str) -> int:
            real = self._real(path)
            with model.lock:
                model.forget(real)
                os.unlink(real)
            return 0

        def rename(self, old: str, new: str) -> int:
            real_new = self._real(new)
            with model.lock:
                model.forget(real_new)
                os.rename(self._real(old), real_new)
            return 0

        def link(self, target: str, source: str) -> int:
            """A hard link ``target`` to ``source`` (a delta list shares the full one's
            files): one file id under two names."""
            os.link(self._real(source), self._real(target))
            return 0

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            if fh is not None:
                os.ftruncate(fh, length)
            else:
                os.truncate(self._real(path), length)
            return 0

        def open(self, path: str, flags: int) -> int:
            return os.open(self._real(path), flags & ~os.O_APPEND)  # offsets come from FUSE

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            fd = os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            os.close(fd)  # reopened read-write: the kernel may read through this handle too
            fd = os.open(self._real(path), os.O_RDWR)
            with model.lock:
                model.fid_of(self._real(path))
            return fd

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if self.cut:
                raise FuseOSError(errno.EIO)
            return os.pread(fh, size, offset)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if self.cut:
                raise FuseOSError(errno.EIO)
            return os.pwrite(fh, data, offset)

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            if self.cut:
                raise FuseOSError(errno.EIO)
            with model.lock:
                model.sync_file(fh)
            return 0

        def opendir(self, path: str) -> int:
            self._real(path)
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            real = self._real(path)
            with model.lock:
                model.sync_dir(real)
            return 0

    return Ops()


def serve(backing: Path, mountpoint: Path, control: Path) -> int:
    """Mount (blocking until unmounted) with a control socket: ``cut`` or ``sync``."""
    import mfusepy  # noqa: PLC0415

    live = backing.with_name(backing.name + ".live")
    if live.exists():
        shutil.rmtree(live)
    shutil.copytree(backing, live, symlinks=True)
    model = _Model(live)
    ops = make_operations(live, model)
    control.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(control))
    srv.listen(4)

    def controller() -> None:
        while True:
            conn, _ = srv.accept()
            with conn:
                cmd = conn.recv(64).decode().strip()
                with model.lock:
                    if cmd == "cut":
                        ops.cut = True
                        counts = model.write_image(backing)
                        reply = "cut " + " ".join(f"{k}={v}" for k, v in counts.items())
                    elif cmd == "sync":
                        _empty(backing)
                        shutil.copytree(live, backing, dirs_exist_ok=True)
                        _fsync_tree(backing)
                        reply = "synced"
                    elif cmd == "ping":
                        reply = "pong"
                    else:
                        reply = f"unknown command {cmd!r}"
                conn.sendall(reply.encode() + b"\n")

    threading.Thread(target=controller, daemon=True).start()
    mfusepy.FUSE(ops, str(mountpoint), foreground=True, allow_other=True, fsname="lazyfs")
    shutil.rmtree(live, ignore_errors=True)
    return 0


class LazyFS:
    """A :func:`serve` process: ``backing`` (a real directory) mounted at ``mountpoint``."""

    def __init__(self, backing: Path, mountpoint: Path, log: Path | None = None):
        self.backing, self.mountpoint = Path(backing), Path(mountpoint)
        self.control = self.backing.with_name(self.backing.name + ".ctl")
        self.log = log or self.backing.with_name(self.backing.name + ".lazyfs.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def mount(self) -> LazyFS:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "host_tools.chaos.lazyfs", str(self.backing),
                 str(self.mountpoint), "--control", str(self.control)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        watch(self.proc.pid)
        end = time.monotonic() + READY_TIMEOUT
        while not (mounted(self.mountpoint) and self._try("ping") == "pong"):
            if self.proc.poll() is not None or time.monotonic() > end:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"lazyfs did not mount {self.mountpoint}: {tail}")
            time.sleep(0.05)
        return self

    def _try(self, cmd: str) -> str | None:
        try:
            return self.command(cmd)
        except OSError:
            return None

    def command(self, cmd: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(self.control))
            s.sendall(cmd.encode())
            buf = b""
            while not buf.endswith(b"\n"):
                b = s.recv(4096)
                if not b:
                    break
                buf += b
        return buf.decode().strip()

    def cut(self) -> str:
        """Power cut: the backing directory becomes the durable image; unmounted."""
        reply = self.command("cut")
        self.unmount()
        return reply

    def sync_unmount(self) -> None:
        """An orderly shutdown: everything written survives."""
        self.command("sync")
        self.unmount()

    def unmount(self) -> None:
        """Detach the mount (lazily: a kiosk namespace may still hold it) and wait for the
        daemon; a daemon that does not leave is aborted through the kernel's fusectl."""
        for _ in range(5):
            if not mounted(self.mountpoint):
                break
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False,
                           capture_output=True)  # fmt: skip
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


def mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point here (even a dead FUSE mount, which
    ``os.path.ismount`` cannot stat)."""
    target = str(Path(path).absolute())
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lazyfs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("backing", type=Path, help="the directory that survives a cut")
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--control", type=Path, required=True, help="Unix socket: cut, sync, ping")
    a = p.parse_args(argv)
    return serve(a.backing.resolve(), a.mountpoint.resolve(), a.control.resolve())


if __name__ == "__main__":
    sys.exit(main())
