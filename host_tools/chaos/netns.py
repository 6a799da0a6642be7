"""Network namespaces and TUN devices, for putting a kiosk behind a faulty link.

    with Namespace.create("ftk-1") as ns:
        fd = ns.tun("ftk0", "10.199.0.2/30", peer_route="10.199.0.0/30")
        ...                                  # ns.argv(cmd) runs cmd inside it

Root only (``ip netns add``, ``/dev/net/tun``). A namespace is entered for one thread
only, through ``setns(2)`` (Python 3.11 has no ``os.setns``, so through libc): a socket or
TUN device made by that thread lives in the namespace, and the thread leaves it again.
Everything made here is removed on exit, and a stale namespace of the same name (a run
that was killed) is removed before it is made again.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from firmware.errors import OperationError, SetupError

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
NETNS_DIR = Path("/run/netns")

T = TypeVar("T")


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise OperationError(f"ip {' '.join(args)}: {out.stderr.strip() or out.returncode}")


def available() -> str | None:
    """None if namespaces and TUN devices can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode:
        return "no iproute2 `ip` command"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OperationError(f"setns: {os.strerror(err)}")


def in_namespace(path: Path | None, fn: Callable[[], T]) -> T:
    """``fn()`` run on a new thread inside the namespace at ``path`` (None: this one)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            if path is not None:
                fd = os.open(path, os.O_RDONLY)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, name="netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def open_tun(name: str) -> int:
    """A TUN device ``name`` in the calling thread's namespace: its fd (no packet info)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise OperationError(f"TUN device {name}: {exc.strerror}") from exc
    return fd


class Namespace:
    """A named network namespace with its loopback up."""

    def __init__(self, name: str):
        self.name = name
        self.path = NETNS_DIR / name
        self._fds: list[int] = []

    @classmethod
    def create(cls, name: str) -> Namespace:
        why = available()
        if why:
            raise SetupError(f"network namespace {name}: {why}")
        ns = cls(name)
        if ns.path.exists():  # left over by a killed run
            _ip("netns", "del", name)
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        return ns

    def tun(self, dev: str, address: str, *, routes: Sequence[str] = ()) -> int:
        """A TUN device ``dev`` inside, up, with ``address`` (CIDR) and ``routes`` via it;
        its fd (the caller reads and writes IP packets on it; closed by :meth:`close`)."""
        fd = in_namespace(self.path, lambda: open_tun(dev))
        self._fds.append(fd)
        _ip("-n", self.name, "addr", "add", address, "dev", dev)
        _ip("-n", self.name, "link", "set", dev, "up")
        for r in routes:
            _ip("-n", self.name, "route", "add", r, "dev", dev)
        return fd

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket that lives in this namespace (bind and connect happen there)."""
        return in_namespace(self.path, lambda: socket.socket(family, kind))

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if self.path.exists():  # a process still inside keeps the namespace, not its name
            _ip("netns", "del", self.name)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[list[Namespace]]:
    """Several namespaces, all removed on exit."""
    made: list[Namespace] = []
    try:
        for n in names:
            made.append(Namespace.create(n))
        yield made
    finally:
        for ns in reversed(made):
            ns.close()
