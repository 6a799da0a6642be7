"""The terminal agent: wires scanner, MRZ engine, query client, outbox, audit log,
signals, status and systemd into one process (``fieldterm agent``).

Threads: the scanner reader and the MQTT network loop deliver events into
:class:`~firmware.agent.core.AgentCore`, whose loop runs in the thread that calls
:meth:`Agent.run` (the main thread under ``fieldterm agent``). The loop pings the systemd
watchdog only while it is turning, so a stuck agent is restarted by systemd.

The offline list (issue 12): the agent opens ``<state_dir>/offline`` as an
:class:`~firmware.offline.store.OfflineStore` and an
:class:`~firmware.offline.answerer.OfflineAnswerer` over it (``[offline] list_key``,
``max_age``; the list's signature is checked against ``[protocol] regional_sign_public``).
Without the key file (or the signing key) there are no offline answers, UNKNOWN as before,
and one warning at start. New lists arrive through
:class:`~firmware.offline.sync.ListSync` over the query client's MQTT link
(:meth:`Agent._open_list_sync`); each one installed is mapped at once and its version and
age shown on the idle screen; each one refused (signature, region, rollback, chunk, ...)
is a ``list_refused`` event with its reason, and the old list stays in use.

Shutdown (SIGTERM, SIGINT or :meth:`Agent.request_stop`): the loop ends, the scanner is
closed, the list download is stopped, the goodbye status is published, signals are
switched off (LEDs dark, buzzer silent, display cleared), the outbox is checkpointed, ``STOPPING=1`` is sent. Pending
queries stay in the outbox for the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from firmware.agent.audit import AuditLog, load_audit_key
from firmware.agent.config import AgentConfig
from firmware.agent.core import AgentCore
from firmware.agent.events import EventLog
from firmware.agent.officer import OfficerSignals
from firmware.agent.outbox import Outbox
from firmware.agent.refusal import hold_fault, show_refusal
from firmware.agent.startcheck import start_alarms
from firmware.agent.states import TerminalStateMachine
from firmware.agent.status import StatusPublisher, offline_payload, status_topic
from firmware.agent.storage import StorageGuard
from firmware.errors import SetupError
from firmware.systemd import SystemdNotifier

log = logging.getLogger(__name__)

Will = tuple[str, bytes, int, bool]
ClientFactory = Callable[[AgentConfig, Will, Callable[[bool], None]], Any]


def default_client_factory(cfg: AgentConfig, will: Will, on_link: Callable[[bool], None]) -> Any:
    """The real sealed-query client, with the status last will and link callbacks."""
    try:
        from firmware.client.client import QueryClient  # noqa: PLC0415
    except ImportError as exc:
        raise SetupError(f"the sealed query client is not installed: {exc}") from exc
    return QueryClient(cfg.client, will=will, on_link=on_link)


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), for the start-up time figure."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return None


def open_signals(cfg: AgentConfig, clock: Callable[[], float]) -> OfficerSignals:
    """The configured LED/buzzer panel, display and button (no silent fall-back to a mock)."""
    from firmware.signals import (  # noqa: PLC0415
        open_button,
        open_display,
        open_panel,
        render_screen,
    )

    sc = cfg.signals
    panel = open_panel(sc.backend, dict(sc.pins), clock, buzzer=sc.buzzer)
    panel.discreet = sc.discreet
    display = open_display(sc.display, clock=clock, bus=sc.i2c_bus, address=sc.i2c_address)
    button = open_button(sc.backend, dict(sc.pins), clock)
    return OfficerSignals(panel, display, button, language=cfg.language, render=render_screen)


class Agent:
    """One terminal agent. ``start()``, then ``run()`` until stopped, then ``close()``."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        signals: OfficerSignals | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        notifier: SystemdNotifier | None = None,
        client_factory: ClientFactory | None = None,
        dockey: Any = None,
        sealer: Any = None,
    ):
        """``client_factory(cfg, will, on_link)``, ``dockey`` (a module with
        ``DocumentKey``) and ``sealer`` (a :class:`~firmware.agent.ledger.KeySealer`)
        default to the real query client, :mod:`firmware.protocol.dockey` and a
        :class:`~firmware.protocol.pending.PendingSealer` to the configured regional KEM
        key; tests may pass their own."""
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self.notifier = notifier or SystemdNotifier()
        self._signals = signals
        self._client_factory = client_factory or default_client_factory
        self._dockey = dockey
        self._key_sealer = sealer
        self._stop = threading.Event()
        self._closed = False
        self.core: AgentCore | None = None
        self.client: Any = None
        self.scanner: Any = None
        self.outbox: Outbox | None = None
        self.audit: AuditLog | None = None
        self.events: EventLog | None = None
        self.status: StatusPublisher | None = None
        self.offline: Any = None  # firmware.offline.answerer.OfflineAnswerer, or None
        self.list_sync: Any = None  # the offline-list download (see _open_list_sync)
        self.lane: Any = None  # lane frames for the site's annunciator (firmware/lane)
        self.telemetry: Any = None  # firmware.agent.telemetry: health sealed to the desk

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Agent:
        from firmware.scanner.port import ScannerReader  # noqa: PLC0415

        if self._dockey is None:
            from firmware.protocol import dockey  # noqa: PLC0415

            self._dockey = dockey
        DocumentKey = self._dockey.DocumentKey

        a = self.cfg.agent
        audit_key = load_audit_key(a.audit_key)
        sealer = self._key_sealer or self._sealer()
        a.state_dir.mkdir(parents=True, exist_ok=True)
        # The audit log first: its head bounds the scan numbers of a re-created outbox.
        self.audit = AuditLog(a.audit_path, audit_key, wall=self.wall)
        self.outbox = Outbox(
            a.outbox_path,
            migrate=lambda qid, key: sealer.seal(qid, DocumentKey(*key)),
            seq_floor=self.audit.head.seq,
            accepted_at=self.audit.last_accepted_seq(),
            wall=self.wall,
        )
        alarms = start_alarms(self.outbox, self.audit)
        self.events = EventLog(a.events_file, self.wall)
        if self._signals is None:
            self._signals = open_signals(self.cfg, self.clock)
        machine = TerminalStateMachine(
            self.clock,
            query_timeout=self.cfg.query_timeout,
            result_hold=a.result_hold,
            unknown_hold=a.unknown_hold,
            rescan_hold=a.rescan_hold,
            notice_hold=a.notice_hold,
        )
        self.offline = self._open_offline()
        self.client, publish = self._open_client()
        topic = status_topic(self.cfg.region, self.cfg.terminal_id)
        self.status = StatusPublisher(publish, topic, self.cfg.terminal_id)
        self.core = AgentCore(
            machine=machine,
            outbox=self.outbox,
            audit=self.audit,
            query=self.client,
            signals=self._signals,
            dockey_from_mrz=DocumentKey.from_mrz,
            sealer=sealer,
            status=self.status,
            events=self.events,
            clock=self.clock,
            wall=self.wall,
            retry_interval=a.retry_interval,
            status_interval=a.status_interval,
            offline=self.offline,
            storage=StorageGuard(a.state_dir, clock=self.clock),
        )
        if hasattr(self.client, "on_clock"):  # the regional's time hints: the clock notice
            self.client.on_clock = self.core.on_clock
        if hasattr(self.client, "audit_head"):  # each query carries the audit head (anchor)
            self.client.audit_head = self.audit.query_head
        self.core.restore(
            alarms + list(getattr(getattr(self.offline, "store", None), "alarms", ()))
        )
        self.list_sync = self._open_list_sync()
        from firmware.lane.hook import open_lane  # noqa: PLC0415

        self.lane = open_lane(self.cfg, self.client, self.core)
        self.scanner = ScannerReader(
            self.cfg.scanner, self.core.on_document, self.clock, mrz_mode=a.mrz_mode
        )
        self.scanner.start()
        self._start_client()
        from firmware.agent import telemetry  # noqa: PLC0415 -- the console's fleet page

        self.telemetry = telemetry.start_for(self)
        age = process_age()
        self.events.write(
            "ready", process_age_s=age, pid=os.getpid(), offline_list=self.core.offline.status()
        )
        self.notifier.ready(status="waiting for documents")
        log.info(
            "agent ready (terminal %s, %.3f s after process start)",
            self.cfg.terminal_id,
            age or -1.0,
        )
        return self

    def run(self) -> int:
        """The main loop: events, timers, watchdog. Returns when stopped."""
        assert self.core is not None, "start() first"
        interval = self.notifier.watchdog_interval
        last_ping = float("-inf")
        while not self._stop.is_set():
            if not self.core.run_once(timeout=0.05):
                break
            now = time.monotonic()
            if interval is not None and now - last_ping >= interval:
                self.notifier.watchdog()
                last_ping = now
        return 0

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._stop.set()
        if self.core is not None:
            self.core.stop()

    def refuse(self, exc: BaseException, hold: float) -> None:
        """The start failed: show FAULT with the reason for ``hold`` s (or until
        stopped), so the kiosk is never dark (:mod:`firmware.agent.refusal`)."""
        shown = show_refusal(
            self._signals, lambda: open_signals(self.cfg, self.clock), str(exc), self.clock
        )
        if shown is not None:
            self._signals = shown
            self.notifier.status(f"refused to start: {exc}")
            hold_fault(shown, hold, self._stop, self.clock)

    def acknowledge(self) -> None:
        """An acknowledgement from outside the button (SIGUSR1)."""
        if self._signals is not None:
            self._signals.request_ack()

    def close(self) -> None:
        """Stop everything in a safe order; signals end dark. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.notifier.stopping()
        for what, fn in (
            ("telemetry", getattr(self.telemetry, "close", None)),
            ("scanner", getattr(self.scanner, "close", None)),
            ("list sync", getattr(self.list_sync, "close", None)),
            ("lane", getattr(self.lane, "close", None)),
            ("status", self._goodbye),
            ("client", getattr(self.client, "close", None)),
            ("signals", getattr(self._signals, "off", None)),
            ("outbox", getattr(self.outbox, "close", None)),
            ("audit", getattr(self.audit, "close", None)),
            ("offline list", getattr(self.offline, "close", None)),
            ("events", getattr(self.events, "close", None)),
            ("notifier", self.notifier.close),
        ):
            if fn is None:
                continue
            try:
                fn()
            except Exception:
                log.exception("closing %s failed", what)

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sealer(self) -> Any:
        """The outbox's sealer of document keys, to the regional's KEM key (issue 13:
        nothing on the card names a document)."""
        from firmware.protocol.keys import load_x25519_public  # noqa: PLC0415
        from firmware.protocol.pending import PendingSealer  # noqa: PLC0415

        c = self.cfg.client
        kem = load_x25519_public(c.regional_kem_public)
        return PendingSealer(kem, self.cfg.region, self.cfg.terminal_id)

    # -- the query client -------------------------------------------------------------------
    def _open_client(self) -> tuple[Any, Callable[[str, bytes, int, bool], Any]]:
        """The sealed-query client, with the status last will and link callbacks."""
        topic = status_topic(self.cfg.region, self.cfg.terminal_id)
        client = self._client_factory(
            self.cfg,
            (topic, offline_payload(self.cfg.terminal_id), 1, True),
            lambda up: self.core.on_link(up) if self.core else None,
        )

        def publish(topic: str, payload: bytes, qos: int, retain: bool) -> Any:
            return client.publish(topic, payload, qos=qos, retain=retain)

        return client, publish

    # -- the offline list ---------------------------------------------------------------------
    def _open_offline(self) -> Any:
        """The offline answerer over ``<state_dir>/offline``, or None (one warning) when
        the offline-list key or the regional's signing key is missing."""
        off = self.cfg.offline
        if off is None:
            return None
        missing = [
            (field, p)
            for field, p in (
                ("offline.list_key", off.list_key),
                ("protocol.regional_sign_public", off.sign_public),
            )
            if p is None or not p.is_file()
        ]
        if missing:
            field, p = missing[0]
            log.warning(
                "no offline answers (UNKNOWN while the link is down): %s %s not found",
                field,
                p or "(not set)",
            )
            return None
        from firmware.offline.answerer import OfflineAnswerer  # noqa: PLC0415
        from firmware.offline.listkey import key_id, load_list_key  # noqa: PLC0415
        from firmware.offline.store import OfflineStore  # noqa: PLC0415
        from firmware.protocol.keys import load_ed25519_public  # noqa: PLC0415

        assert off.sign_public is not None
        list_key = load_list_key(off.list_key)
        store = OfflineStore(
            off.store_dir(self.cfg.agent.state_dir),
            region=self.cfg.region,
            sign_public=load_ed25519_public(off.sign_public),
            key_id=key_id(list_key),
        )
        store.recover()
        answerer = OfflineAnswerer(store, list_key, max_age=off.max_age, clock=self.wall)
        st = answerer.status()
        log.info(
            "offline list: %s",
            f"v{st['list_version']}, {st['list_age_s']:.0f} s old"
            if st.get("list_version") is not None
            else f"none usable ({st.get('reason')})",
        )
        return answerer

    def _open_list_sync(self) -> Any:
        """The offline-list download (:class:`firmware.offline.sync.ListSync`) over the
        query client's MQTT link (``client.link``) into the answerer's store: started with
        the client (:meth:`_start_client`), closed at shutdown; ``on_installed`` maps the
        new list and refreshes the idle screen and the status. None without an offline
        answerer, or with a client that has no shared link (test stand-ins)."""
        if self.offline is None or self.core is None:
            return None
        link = getattr(self.client, "link", None)
        if link is None:
            log.warning("no offline-list download: the query client has no shared MQTT link")
            return None
        from firmware.offline.sync import ListSync  # noqa: PLC0415

        sync = ListSync(
            link,
            self.offline.store,
            on_installed=self._list_installed,
            on_refused=self.core.on_list_refused,
        )
        self.core.offline.sync_status = sync.status
        return sync

    def _list_installed(self, *_: Any) -> None:
        """A new list is installed (any thread): map it, then show its age."""
        if self.offline is not None:
            self.offline.reload()
        if self.core is not None:
            self.core.on_list_installed()

    def _start_client(self) -> None:
        start = getattr(self.client, "start", None)
        if start is not None:
            start()
        sync_start = getattr(self.list_sync, "start", None)
        if sync_start is not None:
            sync_start()
        if self.lane is not None:
            self.lane.start()
        connected = getattr(self.client, "connected", None)
        if callable(connected):
            connected = connected()
        if connected and self.core is not None:
            self.core.on_link(True)

    def _goodbye(self) -> None:
        if self.status is not None and self.core is not None and self.core.machine.link_up:
            self.status.goodbye()
