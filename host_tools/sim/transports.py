"""The simulated scanner's end of the cable: a pty (like a USB-CDC scanner) or a TCP port
on the loopback interface (``socket://``). Bytes in, nothing decided here: framing,
faults and pacing are the simulator's.

A pty: the reader opens the slave path, or a ``link`` symlink kept pointing at the current
slave (like ``/dev/serial/by-id/...``). :meth:`PtyTransport.unplug` closes the pty (the
reader sees the device vanish) and removes the link; :meth:`PtyTransport.plug` makes a new
pty and points the link at it. On TCP the reader uses ``socket://127.0.0.1:PORT``; unplug
closes the listener, plug listens on the same port again.

Both wait for a reader before writing: pyserial discards input that arrived before it
opened the port, so data sent earlier would be lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import struct
import termios
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from firmware.errors import OperationError, SetupError

#: Quiet time after the last write before a drained queue is believed.
DRAIN_QUIET = 0.05
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Transport(Protocol):
    """What the simulator needs of a cable end."""

    plugged: bool

    @property
    def path(self) -> str:
        """What a reader opens (a device path or a pyserial URL)."""
        ...

    def plug(self) -> None: ...

    def unplug(self) -> None: ...

    def wait_reader(self, deadline: float, limit: float) -> bool:
        """Block until a reader is attached (:class:`OperationError` at ``deadline``, a
        monotonic time; ``limit`` is for the message). True if it attached anew."""
        ...

    def write(self, data: bytes, timeout: float) -> None: ...

    def drain(self, timeout: float) -> bool: ...


class PtyTransport:
    """A pseudo-terminal, optionally behind a symlink that follows each replug."""

    def __init__(self, link: Path | None = None, *, sleep: Callable[[float], None] = time.sleep):
        self.link = link
        self._sleep = sleep
        self.plugged = False
        self.slave_path: str | None = None
        self._master: int | None = None
        self._last_write = 0.0
        self._absent_seen = False

    @property
    def path(self) -> str:
        """The link if there is one (it outlives replugs), else the current slave."""
        if self.link is not None:
            return str(self.link)
        if self.slave_path is None:
            raise OperationError("the simulator is unplugged")
        return self.slave_path

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation, even before a reader opens it
        self.slave_path = os.ttyname(slave)
        os.close(slave)  # so that poll() on the master reports whether a reader is attached
        os.set_blocking(master, False)
        self._master = master
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link)
        self.plugged = True

    def unplug(self) -> None:
        self.plugged = False
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        if self._master is not None:
            os.close(self._master)
            self._master = None
        self.slave_path = None

    def wait_reader(self, deadline: float, limit: float) -> bool:
        # "Anew" spans calls: a reader seen absent by a wait that timed out is new to the
        # next wait that finds it there.
        while self._reader_absent():
            self._absent_seen = True
            if time.monotonic() >= deadline:
                raise OperationError(f"no reader opened {self.path} within {limit:.1f} s")
            self._sleep(0.01)
        fresh, self._absent_seen = self._absent_seen, False
        return fresh

    def write(self, data: bytes, timeout: float) -> None:
        """All of ``data``, waiting while the reader's queue is full (up to ``timeout``)."""
        assert self._master is not None
        self._last_write = time.monotonic()
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
                self._last_write = time.monotonic()
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationError("the reader stopped reading (pty full)") from None
                select.select([], [self._master], [], 0.05)

    def drain(self, timeout: float) -> bool:
        """Wait until the reader has read everything written; whether it did in ``timeout``.

        The kernel moves written bytes to the reader's queue a little later, so an empty
        queue counts only when seen twice, at least :data:`DRAIN_QUIET` after the last write.
        """
        if self.slave_path is None:
            return True
        deadline = time.monotonic() + timeout
        empty_seen = 0
        while empty_seen < 2:
            if time.monotonic() >= deadline:
                return False
            self._sleep(0.01)
            if time.monotonic() - self._last_write < DRAIN_QUIET:
                continue
            pending = self._slave_pending()
            if pending is None:
                return False
            empty_seen = empty_seen + 1 if pending == 0 else 0
        return True

    def _reader_absent(self) -> bool:
        assert self._master is not None
        p = select.poll()
        p.register(self._master, select.POLLHUP)
        return any(ev & select.POLLHUP for _fd, ev in p.poll(0))

    def _slave_pending(self) -> int | None:
        assert self.slave_path is not None
        try:
            fd = os.open(self.slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4)
            return int(struct.unpack("i", raw)[0])
        finally:
            os.close(fd)


class TcpTransport:
    """A listening TCP socket on the loopback interface; one reader at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        if host not in LOOPBACK:
            raise SetupError("the simulator serves on the loopback interface only")
        self.host, self.port = host, port
        self.plugged = False
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None

    @property
    def path(self) -> str:
        """The pyserial URL of the listener."""
        return f"socket://{self.host}:{self.port}"

    def plug(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self.port))
        server.listen(1)
        self.port = server.getsockname()[1]  # port 0: the one the kernel chose, kept
        self._server = server
        self.plugged = True

    def unplug(self) -> None:
        self.plugged = False
        for sock in (self._client, self._server):
            if sock is not None:
                sock.close()
        self._client = self._server = None

    def wait_reader(self, deadline: float, limit: float) -> bool:
        if self._client is not None:
            r, _, _ = select.select([self._client], [], [], 0)
            if r and not self._client.recv(4096, socket.MSG_PEEK):
                self._client.close()  # the reader went away; wait for it to come back
                self._client = None
        if self._client is not None:
            return False
        assert self._server is not None
        self._server.settimeout(max(0.0, deadline - time.monotonic()))
        try:
            self._client, _ = self._server.accept()
        except TimeoutError:
            raise OperationError(
                f"no reader connected to {self.path} within {limit:.1f} s"
            ) from None
        return True

    def write(self, data: bytes, timeout: float) -> None:
        assert self._client is not None
        try:
            self._client.sendall(data)
        except OSError as exc:
            raise OperationError(f"reader connection lost: {exc}") from exc

    def drain(self, timeout: float) -> bool:
        """TCP hands bytes to the kernel at once; nothing to wait for here."""
        return True


def _pty(link: Path | None, host: str, port: int, sleep: Callable[[float], None]) -> Transport:
    return PtyTransport(link, sleep=sleep)


def _tcp(link: Path | None, host: str, port: int, sleep: Callable[[float], None]) -> Transport:
    return TcpTransport(host, port)


#: ``transport=`` names and the factory each one uses.
TRANSPORTS: dict[str, Callable[[Path | None, str, int, Callable[[float], None]], Transport]] = {
    "pty": _pty,
    "tcp": _tcp,
}


def open_transport(
    transport: str,
    *,
    link: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> Transport:
    """The named transport, not yet plugged; :class:`SetupError` for an unknown name."""
    factory = TRANSPORTS.get(transport)
    if factory is None:
        raise SetupError(f"transport must be pty or tcp, not {transport!r}")
    return factory(link, host, port, sleep)
