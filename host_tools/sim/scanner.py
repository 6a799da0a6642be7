"""Scanner simulator: serve MRZ documents in any framing on a pty or a TCP port.

:class:`ScannerSimulator` is the in-process API the tests, the demo and the HIL use; the
``fieldterm sim scanner`` command wraps it. It is the composition of three units:

- :mod:`host_tools.sim.frames`: a document's lines to the bytes of a framing (pure);
- :mod:`host_tools.sim.faults`: junk between documents and frames cut short, from one
  seeded random source (pure);
- :mod:`host_tools.sim.transports`: the cable end, a pty (the reader opens its slave or a
  ``link`` symlink that follows it across replugs) or a loopback TCP port
  (``socket://127.0.0.1:PORT``), with unplug and replug.

The simulator itself paces the bytes (an optional delay per character, a gap after a cut
frame) and counts what it sent. Sends wait until a reader has the port open, then a
little longer (``settle``): pyserial flushes its input right after opening the port, so
data sent earlier would be lost.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import OperationError, SetupError
from host_tools.sim.faults import FaultInjector
from host_tools.sim.frames import FRAMINGS, encoder
from host_tools.sim.transports import (
    DRAIN_QUIET,
    LOOPBACK,
    TRANSPORTS,
    Transport,
    open_transport,
)

__all__ = ["DRAIN_QUIET", "FRAMINGS", "ScannerSimulator", "SimStats", "encoder"]


@dataclass
class SimStats:
    documents: int = 0
    truncated: int = 0
    junk_bytes: int = 0
    unplugs: int = 0


class ScannerSimulator:
    """A simulated document scanner (see module docstring). A context manager.

    ``transport`` is ``"pty"`` or ``"tcp"`` (see :data:`~host_tools.sim.transports.TRANSPORTS`),
    or a :class:`~host_tools.sim.transports.Transport` object; ``sleep`` paces everything.
    """

    def __init__(
        self,
        framing: str = "lines",
        *,
        transport: str | Transport = "pty",
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
        if isinstance(transport, str) and transport not in TRANSPORTS:
            raise SetupError(f"transport must be pty or tcp, not {transport!r}")
        if host not in LOOPBACK:
            raise SetupError("the simulator serves on the loopback interface only")
        self.faults = FaultInjector(
            random.Random(seed), junk_rate=junk_rate, truncate_rate=truncate_rate
        )
        self.framing = framing
        self.encode = encoder(framing, stx_style=stx_style, terminator=terminator)
        self.link = Path(link) if link is not None else None
        self.host = host
        if isinstance(transport, str):
            self.transport = transport
            self.endpoint = open_transport(
                transport, link=self.link, host=host, port=port, sleep=sleep
            )
        else:  # a transport object of one's own (tests: a recording one)
            self.transport = type(transport).__name__
            self.endpoint = transport
        self.char_delay = char_delay
        self.truncate_gap = truncate_gap
        self.connect_timeout = connect_timeout
        self.settle = settle
        self._sleep = sleep
        self.stats = SimStats()
        self._settled = False

    # -- options kept by the units ----------------------------------------------------
    @property
    def rng(self) -> random.Random:
        return self.faults.rng

    @property
    def junk_rate(self) -> float:
        return self.faults.junk_rate

    @junk_rate.setter
    def junk_rate(self, rate: float) -> None:
        self.faults.junk_rate = rate

    @property
    def truncate_rate(self) -> float:
        return self.faults.truncate_rate

    @truncate_rate.setter
    def truncate_rate(self, rate: float) -> None:
        self.faults.truncate_rate = rate

    @property
    def port(self) -> int:
        """The TCP port (the kernel's choice once plugged, if 0 was asked); 0 on a pty."""
        return int(getattr(self.endpoint, "port", 0))

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
        return self.endpoint.path

    @property
    def url(self) -> str:
        """A pyserial URL for the reader."""
        return self.endpoint.path

    @property
    def slave_path(self) -> str | None:
        return getattr(self.endpoint, "slave_path", None)

    def unplug(self) -> None:
        """Pull the cable: the port vanishes (the link too); a reader sees an error."""
        if not self.endpoint.plugged:
            return
        self.stats.unplugs += 1
        self.endpoint.unplug()
        self._settled = False

    def replug(self) -> None:
        """Plug in again: a new pty (the link follows it) or the same TCP port again."""
        if not self.endpoint.plugged:
            self.endpoint.plug()

    # -- sending ----------------------------------------------------------------------
    def send(self, lines: Sequence[str]) -> bytes:
        """Send one document (maybe after junk, maybe truncated, as the rates say)."""
        if self.faults.junk_now():
            self.send_junk()
        data = self.encode(list(lines))
        cut = self.faults.cut(data)
        if cut is not None:
            self.send_raw(data[:cut])
            self.stats.truncated += 1
            self._sleep(self.truncate_gap)
            return data[:cut]
        self.send_raw(data)
        self.stats.documents += 1
        return data

    def send_junk(self, size: int | None = None) -> bytes:
        """Noise between frames: random bytes without framing controls, then CR LF."""
        junk = self.faults.junk(size)
        self.send_raw(junk)
        self.stats.junk_bytes += len(junk)
        return junk

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (with the inter-character delay, if any)."""
        self._wait_reader()
        if self.char_delay > 0:
            for i in range(len(data)):
                self.endpoint.write(data[i : i + 1], self.connect_timeout)
                self._sleep(self.char_delay)
        else:
            self.endpoint.write(data, self.connect_timeout)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the reader has read everything sent; whether it did in ``timeout``.

        Closing a pty throws away what the reader has not read yet, so an orderly unplug
        drains first (an abrupt :meth:`unplug` models a cable pulled mid-transfer).
        """
        return self.endpoint.drain(timeout)

    def wait_reader(self, timeout: float | None = None) -> bool:
        """Whether a reader has the port open (waits up to ``timeout`` seconds)."""
        try:
            self._wait_reader(timeout)
        except OperationError:
            return False
        return True

    def _wait_reader(self, timeout: float | None = None) -> None:
        limit = self.connect_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        if not self.endpoint.plugged:
            raise OperationError("the simulated scanner is unplugged")
        if self.endpoint.wait_reader(deadline, limit):
            self._settled = False
        if not self._settled:
            self._sleep(self.settle)  # pyserial flushes its input right after opening
            self._settled = True
