"""The kiosk's telemetry sender: its health, sealed to the alert desk at a fixed rate.

Wire format and the reasons for it: :mod:`firmware.protocol.telemetry`. The sender starts
only when the bundle holds the desk's public key (``alert-desk.pub`` beside the identity
key: ``provision add-terminal`` and ``rotate`` put it there);
without it the kiosk sends no telemetry and the console knows only what the retained
status says (online or offline, :mod:`firmware.agent.status`). Every :data:`~firmware.protocol.telemetry.INTERVAL` seconds while the link is up it
publishes one message, QoS 0, not retained: a lost one is replaced by the next.

The health it sends (:func:`health`): link, outbox depth, documents read, the audit log's
head (``{seq, mac}``: it anchors the log from outside, so a log cut at the end shows, see
audit.py), alarms raised at start (how many, and the first few, shortened), whether the
card is full, the offline list's version, age and staleness, whether the scanner's port
is open, the agent version and its wall clock (the console compares it with its own for
the clock offset). These are the figures the retained status no longer carries: they
change with every scan, so only the desk may read them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware import __version__
from firmware.protocol import keys
from firmware.protocol import telemetry as wire

log = logging.getLogger(__name__)
DESK_KEY_FILE = "alert-desk.pub"
_LIST_FIELDS = ("list_version", "list_age_s", "stale", "records", "reason")
#: Alarms sent (the count is always exact) and the length each is cut to, so the health
#: always fits in the fixed-size message (:data:`firmware.protocol.telemetry.SIZE`).
MAX_ALARMS, ALARM_CHARS = 3, 80


def _short(text: Any) -> str:
    """``text`` cut to :data:`ALARM_CHARS`, printable ASCII only (others become ``?``), so
    its JSON is at most twice as long whatever it holds."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text)[:ALARM_CHARS])


def health(agent: Any) -> dict[str, Any]:
    """The health of a started :class:`~firmware.agent.agent.Agent` (small, fixed fields)."""
    core = agent.core
    scanner = agent.scanner.health() if agent.scanner is not None else {}
    return health_of(core._status_info(), link=bool(core.machine.link_up),
                     scanner=bool(scanner.get("connected")))  # fmt: skip


def health_of(info: dict[str, Any], *, link: bool, scanner: bool) -> dict[str, Any]:
    """The telemetry's health from the core's figures (``AgentCore._status_info``)."""
    lst = info.get("offline_list") or {}
    alarms = list(info.get("alarms") or ())
    return {
        "state": "online",
        "link": link,
        "pending": info.get("pending"),
        "documents": info.get("documents"),
        "audit_head": info.get("audit_head"),
        "alarms": len(alarms),
        "alarm_text": [_short(a) for a in alarms[:MAX_ALARMS]],
        "storage_full": bool(info.get("storage_full")),
        "offline_list": {
            k: (_short(v) if isinstance(v, str) else v)
            for k, v in ((k, lst.get(k)) for k in _LIST_FIELDS if k in lst)
        },
        "scanner": scanner,
        "version": __version__,
    }


class TelemetrySender:
    def __init__(
        self,
        publish: Callable[[str, bytes], Any],
        *,
        desk: Any,
        identity: Any,
        region: str,
        terminal: str,
        snapshot: Callable[[], dict[str, Any]],
        link_up: Callable[[], bool],
        interval: float = wire.INTERVAL,
        wall: Callable[[], float] = time.time,
    ):
        self._publish = publish
        self._desk = desk
        self._identity = identity
        self.region = region
        self.terminal = terminal
        self.topic = wire.topic(region, terminal)
        self._snapshot = snapshot
        self._link_up = link_up
        self.interval = interval
        self._wall = wall
        self.boot = secrets.token_hex(8)
        self.seq = 0
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> TelemetrySender:
        self._thread.start()
        return self

    def message(self) -> bytes:
        self.seq += 1
        return wire.seal(
            self._desk, self._identity, region=self.region, terminal=self.terminal,
            boot=self.boot, seq=self.seq, t=self._wall(), health=self._snapshot(),
        )  # fmt: skip

    def send_once(self) -> bool:
        """Publish one message if the link is up; whether it was handed to the client."""
        if not self._link_up():
            return False
        try:
            self._publish(self.topic, self.message())
        except Exception as exc:  # the next one says the same
            log.warning("telemetry not sent: %s", exc)
            return False
        self.sent += 1
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.send_once()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def start_for(agent: Any) -> TelemetrySender | None:
    """The sender for a started agent, or None when its bundle has no desk key (or the
    agent runs without the sealed-query client). Telemetry never stops the kiosk: a key
    that does not load is logged and the kiosk runs without it."""
    client_cfg = getattr(agent.cfg, "client", None)
    if client_cfg is None or not hasattr(getattr(agent, "client", None), "publish"):
        return None
    try:
        return _start(agent, client_cfg)
    except Exception:
        log.exception("telemetry not started")
        return None


def _start(agent: Any, client_cfg: Any) -> TelemetrySender | None:
    desk_file = Path(client_cfg.identity_key).parent / DESK_KEY_FILE
    if not desk_file.exists():
        log.info("no %s in the bundle: no telemetry to the console", DESK_KEY_FILE)
        return None
    client = agent.client
    sender = TelemetrySender(
        lambda topic, payload: client.publish(topic, payload, qos=0, retain=False),
        desk=keys.load_x25519_public(desk_file),
        identity=keys.load_ed25519_private(client_cfg.identity_key),
        region=agent.cfg.region,
        terminal=agent.cfg.terminal_id,
        snapshot=lambda: health(agent),
        link_up=lambda: bool(agent.core is not None and agent.core.machine.link_up),
    )
    return sender.start()
