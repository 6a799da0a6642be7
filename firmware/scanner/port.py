"""The scanner port: open with pyserial's ``serial_for_url``, read in a thread, re-open.

:class:`ScannerReader` is the one place that does I/O for the scanner. It opens the URL
from :class:`ScannerConfig` (a device path such as ``/dev/serial/by-id/...``,
``socket://host:port``, ``loop://`` or ``spy://...`` for a hex trace), feeds what it reads
to a pure framer with time from an injected clock, and hands each document to a callback
in the reader thread.

Resilience is a thin visible layer: when the device is missing, unplugged or fails, the
reader closes it, ends any frame in progress, and re-opens it after a delay from
:class:`Backoff` (bounded exponential, with jitter). :meth:`ScannerReader.health` says
whether it is connected, the last error, how often it re-opened and the framer counters.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from firmware.config import Section
from firmware.errors import ConfigError, FramingError
from firmware.scanner.auto import AutoFramer, make_framer
from firmware.scanner.base import Framer, ScannedDocument

log = logging.getLogger(__name__)

FRAMING_CHOICES = ("auto", "lines", "stx", "rte", "json")
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
STOPBITS = {1.0: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2.0: serial.STOPBITS_TWO}
#: Read timeout: how often the thread looks at its stop event and the idle clock.
READ_TIMEOUT = 0.05
JOIN_TIMEOUT = 2.0


@dataclass(frozen=True)
class ScannerConfig:
    """The ``[scanner]`` table, validated. Errors name ``scanner.<key>``."""

    port: str
    framing: str = "auto"
    baud: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: float = 1
    idle_timeout: float = 0.5

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return ConfigError(msg, field=f"scanner.{key}")

        if not isinstance(self.port, str) or not self.port:
            raise bad("port", "expected a device path or pyserial URL")
        if self.framing not in FRAMING_CHOICES:
            raise bad("framing", f"{self.framing!r} is not one of {', '.join(FRAMING_CHOICES)}")
        if not isinstance(self.baud, int) or not 50 <= self.baud <= 4_000_000:
            raise bad("baud", f"{self.baud!r} is not a baud rate (50-4000000)")
        if self.parity not in PARITIES:
            raise bad("parity", f"{self.parity!r} is not one of N, E, O")
        if self.bytesize not in (5, 6, 7, 8):
            raise bad("bytesize", f"{self.bytesize!r} is not 5, 6, 7 or 8")
        if float(self.stopbits) not in STOPBITS:
            raise bad("stopbits", f"{self.stopbits!r} is not 1, 1.5 or 2")
        if not 0 < self.idle_timeout <= 60:
            raise bad("idle_timeout", f"{self.idle_timeout!r} is not in (0, 60] seconds")

    @classmethod
    def from_section(cls, section: Section) -> ScannerConfig:
        """Read the ``[scanner]`` table of terminal.toml."""
        cfg = cls(
            port=section.text("port"),
            framing=section.choice("framing", FRAMING_CHOICES, "auto"),
            baud=section.integer("baud", 9600, lo=50, hi=4_000_000),
            parity=section.choice("parity", tuple(PARITIES), "N"),
            bytesize=section.integer("bytesize", 8, lo=5, hi=8),
            stopbits=section.number("stopbits", 1, lo=1, hi=2),
            idle_timeout=section.number("idle_timeout", 0.5, lo=0.001, hi=60),
        )
        return cfg

    def open(self, timeout: float = READ_TIMEOUT) -> serial.SerialBase:
        """Open the port (raises pyserial's errors; :class:`ScannerReader` handles them)."""
        return serial.serial_for_url(
            self.port,
            baudrate=self.baud,
            parity=PARITIES[self.parity],
            bytesize=self.bytesize,
            stopbits=STOPBITS[float(self.stopbits)],
            timeout=timeout,
        )


@dataclass
class Backoff:
    """Re-open delays: ``initial * factor**n`` capped at ``maximum``, then jittered.

    Jitter spreads each delay over ``[d * (1 - jitter), d]`` so kiosks that lost power
    together do not retry in step; no delay exceeds ``maximum``. Pure: the random source
    is injected, so a test reads the whole sequence without sleeping.
    """

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


class ScannerReader:
    """Reads documents from the scanner port in a thread until closed (context manager).

    ``on_document`` runs in the reader thread; pass ``queue.put`` to hand documents to
    another thread. ``on_frame_error`` (optional) gets each :class:`FramingError` (an
    undecodable frame: the agent may ask for a rescan). Exceptions from either callback
    are logged and counted, never allowed to stop the reader.
    """

    def __init__(
        self,
        config: ScannerConfig,
        on_document: Callable[[ScannedDocument], None],
        clock: Callable[[], float] = time.monotonic,
        *,
        mrz_mode: str = "strict",
        on_frame_error: Callable[[FramingError], None] | None = None,
        backoff: Backoff | None = None,
        open_port: Callable[[ScannerConfig], Any] | None = None,
        framer: Framer | None = None,
    ) -> None:
        self.config = config
        self._on_document = on_document
        self._on_frame_error = on_frame_error
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._open_port = open_port or (lambda cfg: cfg.open())
        self.framer = framer or make_framer(
            config.framing, mrz_mode=mrz_mode, idle_timeout=config.idle_timeout
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._port: Any = None
        self._connected = False
        self._last_error: str | None = None
        self._opens = 0
        self._reopens = 0
        self._callback_errors = 0

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> ScannerReader:
        """Start the reader thread (once). Opening happens in the thread, with retries."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scanner-reader", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the port. Idempotent; the join is bounded."""
        self._stop.set()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            try:
                port.cancel_read()
            except Exception:
                log.debug("cancel_read failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("scanner reader thread did not stop within %.1f s", JOIN_TIMEOUT)
        self._close_port()

    def __enter__(self) -> ScannerReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """A snapshot: connected, port, framing, last error, opens, reopens, counters."""
        framing = self.config.framing
        if isinstance(self.framer, AutoFramer) and self.framer.framing:
            framing = f"auto:{self.framer.framing}"
        with self._lock:
            return {
                "connected": self._connected,
                "running": self._thread is not None and self._thread.is_alive(),
                "port": self.config.port,
                "framing": framing,
                "last_error": self._last_error,
                "opens": self._opens,
                "reopens": self._reopens,
                "callback_errors": self._callback_errors,
                **self.framer.counters(),
            }

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._port is None and not self._try_open():
                self._stop.wait(self._backoff.next_delay())
                continue
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's posix read after a concurrent close.
                if self._stop.is_set():
                    break
                self._lost(exc)
                continue
            now = self._clock()
            try:
                docs = self.framer.feed(data, now) if data else self.framer.poll(now)
            except Exception as exc:  # a bug must not silently end the reader thread
                log.exception("scanner framer failed; continuing")
                with self._lock:
                    self._last_error = _describe(exc)
                continue
            self._deliver(docs)
        self._close_port()

    def _try_open(self) -> bool:
        try:
            port = self._open_port(self.config)
        except (serial.SerialException, OSError, ValueError) as exc:
            with self._lock:
                self._last_error = _describe(exc)
            log.info("scanner port not available: %s", self._last_error)
            return False
        with self._lock:
            self._port = port
            self._connected = True
            if self._opens:
                self._reopens += 1
            self._opens += 1
        self._backoff.reset()
        log.info("scanner port open: %s", self.config.port)
        return True

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            self._last_error = _describe(exc)
        log.warning("scanner port lost: %s", self._last_error)
        self._close_port()
        # A frame cut by the unplug ends here: a partial document goes out, a frame is bad.
        self._deliver(self.framer.flush())

    def _close_port(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            self._connected = False
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("closing the scanner port failed", exc_info=True)

    def _deliver(self, docs: list[ScannedDocument]) -> None:
        for doc in docs:
            self._call(self._on_document, doc)
        errors = self.framer.take_errors()
        for err in errors:
            log.info("scanner frame rejected: %s", err)
            if self._on_frame_error is not None:
                self._call(self._on_frame_error, err)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:
            with self._lock:
                self._callback_errors += 1
            log.exception("scanner callback failed")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
