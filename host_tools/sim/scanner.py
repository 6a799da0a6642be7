"""Scanner simulator: serve MRZ documents in any framing on a pty or a TCP port.

:class:`ScannerSimulator` is the in-process API the tests and the demo use; the
``fieldterm sim scanner`` command wraps it. A pty behaves like a USB-CDC scanner: the
reader opens the slave path (or a ``link`` symlink kept pointing at the current slave,
like ``/dev/serial/by-id/...``). ``unplug()`` closes the pty (the reader sees the device
vanish) and removes the link; ``replug()`` makes a new pty and points the link at it.
On TCP the reader uses ``socket://127.0.0.1:PORT``; unplug closes the listener.

Sends wait until a reader has the port open: pyserial discards input that arrived
before it opened the port, so data sent earlier would be lost. Junk injected between
documents never contains the framing control bytes and ends with CR LF, so every
document after it is still readable; a truncated frame is followed by a gap longer than
the reader's idle time, as when an officer pulls a document out mid-read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import select
import socket
import struct
import termios
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import OperationError, SetupError
from firmware.scanner import framing_json, framing_lines, framing_rte, framing_stx

FRAMINGS = ("lines", "stx", "rte", "json")
#: Quiet time after the last write before a drained queue is believed.
DRAIN_QUIET = 0.05
_CONTROL = frozenset(b"\x01\x02\x03\r\n")


def encoder(
    framing: str, *, stx_style: str = "accessis", terminator: bytes = b"\r\n"
) -> Callable[[Sequence[str]], bytes]:
    """``encode(lines)`` of a framing, with the simulator's style choices bound."""
    if framing == "lines":
        return lambda lines: framing_lines.encode(lines, terminator)
    if framing == "stx":
        prefix, suffix = framing_stx.STYLES[stx_style]
        return lambda lines: framing_stx.encode(lines, prefix, suffix)
    if framing == "rte":
        return framing_rte.encode
    if framing == "json":
        return framing_json.encode
    raise SetupError(f"unknown framing {framing!r}; use one of {', '.join(FRAMINGS)}")


@dataclass
class SimStats:
    documents: int = 0
    truncated: int = 0
    junk_bytes: int = 0
    unplugs: int = 0


class ScannerSimulator:
    """A simulated document scanner (see module docstring). A context manager."""

    def __init__(
        self,
        framing: str = "lines",
        *,
        transport: str = "pty",
        link: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        char_delay: float = 0.0,
        junk_rate: float = 0.0,
        truncate_rate: float = 0.0,
        truncate_gap: float = 1.0,
        seed: int | None = None,
        stx_style: str = "accessis",
        terminator: bytes = b"\r\n",
        connect_timeout: float = 10.0,
        settle: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if transport not in ("pty", "tcp"):
            raise SetupError(f"transport must be pty or tcp, not {transport!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SetupError("the simulator serves on the loopback interface only")
        for name, rate in (("junk_rate", junk_rate), ("truncate_rate", truncate_rate)):
            if not 0.0 <= rate <= 1.0:
                raise SetupError(f"{name} must be within [0, 1]")
        self.framing = framing
        self.encode = encoder(framing, stx_style=stx_style, terminator=terminator)
        self.transport = transport
        self.link = Path(link) if link is not None else None
        self.host, self.port = host, port
        self.char_delay = char_delay
        self.junk_rate, self.truncate_rate, self.truncate_gap = (
            junk_rate,
            truncate_rate,
            truncate_gap,
        )
        self.rng = random.Random(seed)
        self.connect_timeout = connect_timeout
        self.settle = settle
        self._sleep = sleep
        self.stats = SimStats()
        self._master: int | None = None
        self._slave_path: str | None = None
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self._settled = False
        self._plugged = False
        self._last_write = 0.0

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> ScannerSimulator:
        self.replug()
        return self

    def close(self) -> None:
        """Unplug and remove the link. Idempotent."""
        self.unplug()

    def __enter__(self) -> ScannerSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """What a reader opens: the link, the pty slave, or the TCP URL."""
        if self.transport == "tcp":
            return self.url
        if self.link is not None:
            return str(self.link)
        if self._slave_path is None:
            raise OperationError("the simulator is unplugged")
        return self._slave_path

    @property
    def url(self) -> str:
        """A pyserial URL for the reader."""
        if self.transport == "tcp":
            return f"socket://{self.host}:{self.port}"
        return self.path

    @property
    def slave_path(self) -> str | None:
        return self._slave_path

    def unplug(self) -> None:
        """Pull the cable: the port vanishes (the link too); a reader sees an error."""
        if not self._plugged:
            return
        self._plugged = False
        self.stats.unplugs += 1
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for sock in (self._client, self._server):
            if sock is not None:
                sock.close()
        self._client = self._server = None
        if self._master is not None:
            os.close(self._master)
            self._master = None
        self._slave_path = None
        self._settled = False

    def replug(self) -> None:
        """Plug in again: a new pty (the link follows it) or the same TCP port again."""
        if self._plugged:
            return
        if self.transport == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no CR/LF translation, even before a reader opens it
            self._slave_path = os.ttyname(slave)
            os.close(slave)  # so that poll() on the master reports whether a reader is attached
            os.set_blocking(master, False)
            self._master = master
            if self.link is not None:
                tmp = self.link.with_name(self.link.name + ".tmp")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                os.symlink(self._slave_path, tmp)
                os.replace(tmp, self.link)
        else:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((self.host, self.port))
            server.listen(1)
            self.port = server.getsockname()[1]
            self._server = server
        self._plugged = True

    # -- sending ----------------------------------------------------------------------
    def send(self, lines: Sequence[str]) -> bytes:
        """Send one document (maybe after junk, maybe truncated, as the rates say)."""
        if self.junk_rate and self.rng.random() < self.junk_rate:
            self.send_junk()
        data = self.encode(list(lines))
        if self.truncate_rate and self.rng.random() < self.truncate_rate:
            cut = self.rng.randrange(1, max(2, len(data) - 1))
            self.send_raw(data[:cut])
            self.stats.truncated += 1
            self._sleep(self.truncate_gap)
            return data[:cut]
        self.send_raw(data)
        self.stats.documents += 1
        return data

    def send_junk(self, size: int | None = None) -> bytes:
        """Noise between frames: random bytes without framing controls, then CR LF."""
        n = size if size is not None else self.rng.randint(1, 32)
        junk = bytes(b for b in (self.rng.randrange(256) for _ in range(n)) if b not in _CONTROL)
        junk += b"\r\n"
        self.send_raw(junk)
        self.stats.junk_bytes += len(junk)
        return junk

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (with the inter-character delay, if any)."""
        self._wait_reader()
        if self.char_delay > 0:
            for i in range(len(data)):
                self._write(data[i : i + 1])
                self._sleep(self.char_delay)
        else:
            self._write(data)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the reader has read everything sent; whether it did in ``timeout``.

        Closing a pty throws away what the reader has not read yet, so an orderly unplug
        drains first (an abrupt :meth:`unplug` models a cable pulled mid-transfer). The
        kernel moves written bytes to the reader's queue a little later, so an empty
        queue counts only when seen twice, at least :data:`DRAIN_QUIET` after the last write.
        """
        if self.transport != "pty" or self._slave_path is None:
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

    def _slave_pending(self) -> int | None:
        assert self._slave_path is not None
        try:
            fd = os.open(self._slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4)
            return int(struct.unpack("i", raw)[0])
        finally:
            os.close(fd)

    def wait_reader(self, timeout: float | None = None) -> bool:
        """Whether a reader has the port open (waits up to ``timeout`` seconds)."""
        try:
            self._wait_reader(timeout)
        except OperationError:
            return False
        return True

    # -- internals --------------------------------------------------------------------
    def _wait_reader(self, timeout: float | None = None) -> None:
        limit = self.connect_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        if not self._plugged:
            raise OperationError("the simulated scanner is unplugged")
        if self.transport == "pty":
            while self._reader_absent():
                self._settled = False
                if time.monotonic() >= deadline:
                    raise OperationError(f"no reader opened {self.path} within {limit:.1f} s")
                self._sleep(0.01)
        else:
            self._accept(deadline, limit)
        if not self._settled:
            self._sleep(self.settle)  # pyserial flushes its input right after opening
            self._settled = True

    def _reader_absent(self) -> bool:
        assert self._master is not None
        p = select.poll()
        p.register(self._master, select.POLLHUP)
        return any(ev & select.POLLHUP for _fd, ev in p.poll(0))

    def _accept(self, deadline: float, limit: float) -> None:
        if self._client is not None:
            r, _, _ = select.select([self._client], [], [], 0)
            if r and not self._client.recv(4096, socket.MSG_PEEK):
                self._client.close()  # the reader went away; wait for it to come back
                self._client = None
        if self._client is None:
            assert self._server is not None
            self._server.settimeout(max(0.0, deadline - time.monotonic()))
            try:
                self._client, _ = self._server.accept()
            except TimeoutError:
                raise OperationError(
                    f"no reader connected to {self.url} within {limit:.1f} s"
                ) from None
            self._settled = False

    def _write(self, data: bytes) -> None:
        self._last_write = time.monotonic()
        deadline = time.monotonic() + self.connect_timeout
        if self.transport == "tcp":
            assert self._client is not None
            try:
                self._client.sendall(data)
            except OSError as exc:
                raise OperationError(f"reader connection lost: {exc}") from exc
            return
        assert self._master is not None
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
