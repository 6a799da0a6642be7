"""systemd integration without a dependency: sd_notify and the watchdog interval.

Shared by the kiosk agent and the regional service.

``sd_notify`` sends a datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path,
or an abstract socket when it starts with ``@``). Outside systemd every call is a no-op.
The unit (hardware/systemd/fieldterm-agent.service) is ``Type=notify`` with
``WatchdogSec``: the agent sends ``READY=1`` once it runs, ``WATCHDOG=1`` from its main
loop (only while the loop is alive), and ``STOPPING=1`` on shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Send notifications to systemd. Idempotent ``close()``; never raises on send."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        self.watchdog_usec = _int(env.get("WATCHDOG_USEC"))
        wd_pid = _int(env.get("WATCHDOG_PID"))
        if wd_pid is not None and wd_pid != os.getpid():
            self.watchdog_usec = None  # the watchdog is meant for another process
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings: half the configured timeout, or None."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2e6

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram. True if it was sent."""
        if self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), addr)
            return True
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr goes to the journal (systemd sets ``$JOURNAL_STREAM``)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v else None
    except ValueError:
        return None
