"""A kiosk's faulty link to its broker: two namespaces, a packet forwarder, a TCP relay.

This kernel has no netem qdisc, so faults are made in user space (as
``../shared/notes/parts-checked.md`` found here)::

    kiosk netns (ftk0 10.199.N.2) ==TUN== Forwarder (this process) ==TUN== gateway netns
    (ftg0 10.199.N.1, the Relay's listening socket) --> 127.0.0.1:<broker port> (root netns)

The agent runs inside the kiosk namespace (``link.argv(cmd)``) and names the broker
``10.199.N.1`` (``LocalRegion(terminal_host=...)``); every IP packet between it and the
gateway passes through :class:`Forwarder`, which drops, delays or holds it as told, one
direction at a time. The kiosk's own TCP stack sees the loss, the delay, the partition or
the half-open connection; the relay then carries the bytes over loopback to the real
broker, which keeps listening on 127.0.0.1 only. Counters say what was done to each
packet, so a test asserts the fault itself and not only its symptoms.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import random
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.errors import SetupError
from host_tools.chaos.netns import Namespace

#: Where links hold the lock of their index.
LOCK_DIR = Path("/run/fieldterm-chaos")

UP, DOWN = "up", "down"  # kiosk -> broker, broker -> kiosk


@dataclass
class Faults:
    """What the link does now, per direction where it matters."""

    loss: float = 0.0  # probability of dropping a packet, both directions
    delay_ms: float = 0.0  # added one-way delay
    jitter_ms: float = 0.0  # +- uniform around the delay
    down: bool = False  # a partition: nothing passes either way
    drop: frozenset[str] = field(default_factory=frozenset)  # directions silently dropped


class Forwarder:
    """Moves IP packets between two TUN fds under :class:`Faults`, on one thread."""

    def __init__(self, kiosk_fd: int, gateway_fd: int, *, seed: int = 0):
        self._fds = {UP: (kiosk_fd, gateway_fd), DOWN: (gateway_fd, kiosk_fd)}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.faults = Faults()
        self.counts = {f"{d}_{k}": 0 for d in (UP, DOWN) for k in ("passed", "dropped", "held")}
        self._queue: list[tuple[float, int, int, bytes]] = []  # (due, seq, fd, packet)
        self._seq = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (kiosk_fd, gateway_fd, self._wake_r):
            os.set_blocking(fd, False)
        self._thread = threading.Thread(target=self._run, name="chaos-forwarder", daemon=True)

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def set(self, **changes: Any) -> Faults:
        """Change the faults (fields of :class:`Faults`); the new ones, for the log."""
        with self._lock:
            for k, v in changes.items():
                if not hasattr(self.faults, k):
                    raise ValueError(f"no such fault: {k}")
                setattr(self.faults, k, frozenset(v) if k == "drop" else v)
            out = Faults(**vars(self.faults))
        os.write(self._wake_w, b"x")
        return out

    def clear(self) -> None:
        """A perfect link again (packets already delayed still arrive)."""
        self.set(loss=0.0, delay_ms=0.0, jitter_ms=0.0, down=False, drop=())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def _decide(self, direction: str) -> float | None:
        """Seconds to hold a packet going ``direction``, or None to drop it."""
        f = self.faults
        if f.down or direction in f.drop or (f.loss and self._rng.random() < f.loss):
            return None
        if not f.delay_ms and not f.jitter_ms:
            return 0.0
        ms = f.delay_ms + self._rng.uniform(-f.jitter_ms, f.jitter_ms)
        return max(0.0, ms / 1000.0)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._fds[UP][0], selectors.EVENT_READ, UP)
        sel.register(self._fds[DOWN][0], selectors.EVENT_READ, DOWN)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, fd, pkt = heapq.heappop(self._queue)
                with contextlib.suppress(OSError):
                    os.write(fd, pkt)
            timeout = max(0.0, self._queue[0][0] - now) if self._queue else 0.5
            for key, _ in sel.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 512)
                    continue
                self._pump(key.data)
        sel.close()

    def _pump(self, direction: str) -> None:
        src, dst = self._fds[direction]
        while True:
            try:
                pkt = os.read(src, 65536)
            except (BlockingIOError, OSError):
                return
            with self._lock:
                hold = self._decide(direction)
                if hold is None:
                    self.counts[f"{direction}_dropped"] += 1
                    continue
                self.counts[f"{direction}_passed"] += 1
                if hold == 0.0:
                    with contextlib.suppress(OSError):
                        os.write(dst, pkt)
                    continue
                self.counts[f"{direction}_held"] += 1
                self._seq += 1
                heapq.heappush(self._queue, (time.monotonic() + hold, self._seq, dst, pkt))

    def stop(self) -> None:
        if self._stop.is_set():
            return  # stopped already
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Relay:
    """Accepts TCP connections on a socket made in the gateway namespace and joins each to
    ``target`` (in this process's namespace); a side that closes closes the other."""

    def __init__(self, listener: socket.socket, target: tuple[str, int]):
        self._listener = listener
        self._target = target
        self._stop = threading.Event()
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="chaos-relay", daemon=True)

    def start(self) -> Relay:
        self._listener.listen(64)
        self._listener.settimeout(0.5)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                inner, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                outer = socket.create_connection(self._target, timeout=5)
            except OSError:
                inner.close()  # the broker is down: the kiosk sees its connection refused
                continue
            with self._lock:
                self.accepted += 1
                self._pairs.append((inner, outer))
            threading.Thread(
                target=self._pipe, args=(inner, outer), name="chaos-relay-pipe", daemon=True
            ).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        for s, other in ((a, b), (b, a)):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, other)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        return
                    key.data.setblocking(True)
                    try:
                        key.data.sendall(data)
                    except OSError:
                        return
                    finally:
                        key.data.setblocking(False)
        finally:
            sel.close()
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def drop_connections(self) -> int:
        """Close every relayed connection at once (a broker-side reset); how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        return len(pairs)

    def stop(self) -> None:
        self._stop.set()
        self.drop_connections()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)


class KioskLink:
    """A kiosk namespace joined to the broker at ``127.0.0.1:port`` through a faulty link.

    ``index`` picks the /30 (``10.199.<index>.0``) and the names (``ftk-<index>``,
    ``ftg-<index>``), so several links can coexist. A link holds ``LOCK_DIR/link-<index>
    .lock`` while it lives: a second one with the same index is refused instead of
    deleting the namespaces under the first (a namespace left by a killed run, whose lock
    went with it, is replaced)."""

    def __init__(self, broker_port: int, *, index: int = 1, seed: int = 0):
        if not 1 <= index <= 250:
            raise ValueError("link index must be 1 to 250")
        self.index = index
        self.broker_port = broker_port
        self.kiosk_ip = f"10.199.{index}.2"
        self.gateway_ip = f"10.199.{index}.1"
        self._seed = seed
        self.kiosk: Namespace | None = None
        self.gateway: Namespace | None = None
        self.forwarder: Forwarder | None = None
        self.relay: Relay | None = None
        self._lock: int | None = None

    def _take_index(self) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_DIR / f"link-{self.index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SetupError(
                f"link index {self.index} (namespaces ftk-{self.index}, ftg-{self.index}) is in"
                " use by another chaos run on this machine; give this one another index"
                " (fieldterm chaos --link-index N)"
            ) from None
        self._lock = fd

    def start(self) -> KioskLink:
        self._take_index()
        try:
            self.kiosk = Namespace.create(f"ftk-{self.index}")
            self.gateway = Namespace.create(f"ftg-{self.index}")
            kfd = self.kiosk.tun("ftk0", f"{self.kiosk_ip}/30")
            gfd = self.gateway.tun("ftg0", f"{self.gateway_ip}/30")
            self.forwarder = Forwarder(kfd, gfd, seed=self._seed).start()
            listener = self.gateway.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.gateway_ip, self.broker_port))
            self.relay = Relay(listener, ("127.0.0.1", self.broker_port)).start()
        except BaseException:
            self.stop()
            raise
        return self

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the kiosk namespace."""
        assert self.kiosk is not None
        return self.kiosk.argv(argv)

    def set(self, **faults: Any) -> Faults:
        assert self.forwarder is not None
        return self.forwarder.set(**faults)

    def clear(self) -> None:
        assert self.forwarder is not None
        self.forwarder.clear()

    def counts(self) -> dict[str, int]:
        assert self.forwarder is not None
        return self.forwarder.snapshot()

    def stop(self) -> None:
        for part in (self.relay, self.forwarder):
            if part is not None:
                part.stop()
        for ns in (self.gateway, self.kiosk):
            if ns is not None:
                ns.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> KioskLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
