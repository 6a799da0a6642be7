"""The regional service: opens sealed queries, looks them up, answers, alerts, audits.

Per query (paho's network thread, kept short on purpose):
terminal from topic -> ``RegionalSessions.open_query`` (AEAD; public-key work only for a
new session ticket) -> shared replay store -> ``SltdLookup.lookup`` -> ``Response`` ->
``seal_response`` -> publish to the terminal's response topic (QoS 1). A hit also
queues a signed alert; a timer publishes one sealed, fixed-size alert batch (empty or not)
every ``alert_interval`` seconds to the alert desk (firmware/protocol/alerts.py), so the
broker cannot tell when hits happen. Refused queries (tampered, replayed, foreign keys, revoked
terminal, stale) get no answer at all; they are counted by reason and audited.

Ready means one thing, everywhere (tests, demo, benchmarks, HIL, systemd): the broker has
granted the query subscription (SUBACK), so no query can be dropped for want of a
subscriber. At that moment the health file is written with ``"ready": true`` and, under
systemd (``$NOTIFY_SOCKET``), ``READY=1`` is sent. ``ready`` turns false while the broker
link is down and true again after the next SUBACK.

Several processes may run with the same config: the shared subscription spreads queries
over them and the replay store and audit trail are shared SQLite files. Give each process
its own health file (``fieldterm regional --health-file`` or the environment variable
``FIELDTERM_REGIONAL__HEALTH_FILE``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from firmware.errors import EnvelopeError
from firmware.protocol import alerts, keys, topics
from firmware.protocol.dockey import keyed_hash64
from firmware.protocol.messages import Response
from firmware.protocol.session import RegionalSessions
from firmware.systemd import SystemdNotifier
from firmware.transport.mqtt import MqttLink
from host_tools.regional.audit import AuditTrail
from host_tools.regional.config import RegionalConfig
from host_tools.regional.replay import ReplayStore
from host_tools.regional.terminals import TerminalRegistry
from host_tools.sltd.lookup import SltdLookup, read_index_key

log = logging.getLogger(__name__)


def record_details(rec: Any) -> dict[str, str]:
    """What a terminal is told about a hit (messages.RECORD_FIELDS); the list version
    travels in the response itself."""
    return {
        "status": str(rec.status),
        "reporting_country": rec.reporting_country,
        "reference": rec.reference,
        "reported_on": rec.reported_on.isoformat(),
        "document_type": rec.document_type,
    }


class RegionalService:
    """One regional process. ``start()``, then ``stop()`` (idempotent) or ``run(stop_event)``."""

    def __init__(
        self, cfg: RegionalConfig, *, clock: Any = time.time, client_id: str | None = None
    ):
        self.cfg = cfg
        self._clock = clock
        self.counts: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self._index_key = read_index_key(cfg.index_key)
        self._sign_key = keys.load_ed25519_private(cfg.sign_key)
        self.lookup = SltdLookup.open(cfg.sltd_db, self._index_key)
        self.sessions: RegionalSessions | None = None
        self.terminals = TerminalRegistry(cfg.terminals, on_forget=self._forget)
        self.sessions = RegionalSessions(
            region=cfg.region,
            kem_private=keys.load_x25519_private(cfg.kem_key),
            terminal_keys=self.terminals.keys,
            window=cfg.replay_window,
        )
        self.replay = ReplayStore(cfg.replay_db, cfg.replay_window)
        self.audit = AuditTrail(cfg.audit_db)
        self._alert_topic = topics.alert_topic(cfg.region)
        self._desk = keys.load_x25519_public(cfg.alert_key) if cfg.alert_key else None
        self._desk_stamp = self._stamp(cfg.alert_key)
        self._alerts: deque[dict[str, Any]] = deque()
        self._alert_lock = threading.Lock()
        self._alert_seq = 0
        self._alert_src = os.urandom(8).hex()
        self._qprefix_len = len(topics.query_topic(cfg.region, "x")) - 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._systemd = SystemdNotifier()
        self.link = MqttLink(
            cfg.broker,
            client_id or f"regional-{os.uname().nodename}-{os.getpid()}",
            on_message=self.on_query,
            subscriptions=(topics.query_subscription(cfg.region, cfg.share_group),),
            on_link=self._on_link,
        )

    # -- the hot path (paho thread) --------------------------------------------------------
    def on_query(self, topic: str, payload: bytes) -> None:
        now = self._clock()
        terminal = topic[self._qprefix_len :]
        assert self.sessions is not None
        try:
            q = self.sessions.open_query(terminal, payload, now)
        except EnvelopeError as exc:
            self._refuse(now, terminal, None, getattr(exc, "reason", None) or "invalid")
            return
        if not self.replay.first_use(q.nonce, now):
            self._refuse(now, terminal, q.query_id, "replay")
            return
        lk = self.lookup
        version = lk.list_version
        try:
            rec = lk.lookup(q.dk)
        except Exception:
            log.exception("lookup failed")
            rec, outcome = None, "ERROR"
            resp = Response(q.query_id, "ERROR", list_version=version, reason="lookup failed")
        else:
            if rec is None:
                outcome = "NO_MATCH"
                resp = Response(q.query_id, outcome, list_version=version)
            else:
                outcome = "POSSIBLE_MATCH"
                resp = Response(
                    q.query_id, outcome, list_version=version, record=record_details(rec)
                )
        self.link.publish(
            topics.response_topic(self.cfg.region, q.terminal_id),
            self.sessions.seal_response(q, resp),
        )
        self.counts[outcome] += 1
        dkh = keyed_hash64(self._index_key, q.dk).to_bytes(8, "big").hex()
        self.audit.record(now, q.terminal_id, q.query_id, dkh, outcome, version)
        if rec is not None:
            self._alert(now, q, dkh, rec, version)

    def _refuse(self, now: float, terminal: str, query_id: bytes | None, reason: str) -> None:
        self.refusals[reason] += 1
        self.counts["refused"] += 1
        self.audit.record(now, terminal[:64], query_id, None, f"REFUSED:{reason}", None)
        log.info("refused a query from %r: %s", terminal[:64], reason)

    def _alert(self, now: float, q: Any, dkh: str, rec: Any, version: int) -> None:
        body = {
            "v": 1,
            "region": self.cfg.region,
            "terminal": q.terminal_id,
            "query_id": q.query_id.hex(),
            "dkh": dkh,
            "reference": rec.reference,
            "status": str(rec.status),
            "reporting_country": rec.reporting_country,
            "list_version": version,
            "t": round(now, 3),
        }
        with self._alert_lock:
            self._alerts.append(alerts.sign_alert(self._sign_key, body))
        self.counts["alerts"] += 1

    def flush_alerts(self) -> Any:
        """Publish one sealed batch (up to MAX_PER_BATCH queued alerts, or none: the
        broker sees the same message either way). Nothing while the broker is away: alerts
        stay queued. Returns paho's message info of the batch, or None."""
        if self._desk is None or not self.link.connected.is_set():
            return None
        with self._alert_lock:
            batch = [
                self._alerts.popleft() for _ in range(min(len(self._alerts), alerts.MAX_PER_BATCH))
            ]
        self._alert_seq += 1
        try:
            payload = alerts.seal_batch(
                self._desk,
                self.cfg.region,
                src=self._alert_src,
                seq=self._alert_seq,
                t=self._clock(),
                alerts=batch,
            )
            info = self.link.publish(self._alert_topic, payload)
        except Exception:
            with self._alert_lock:
                self._alerts.extendleft(reversed(batch))
            raise
        self.counts["alert_batches"] += 1
        self.counts["alerts_sent"] += len(batch)
        return info

    @staticmethod
    def _stamp(path: Path | None) -> tuple[int, int] | None:
        try:
            st = path.stat() if path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st is not None else None

    def reload_desk_key(self) -> bool:
        """Pick up a rotated alert desk key (``provision alert-desk --rotate`` rewrites
        it); a file that does not load keeps the old key. True if the key changed."""
        stamp = self._stamp(self.cfg.alert_key)
        if self.cfg.alert_key is None or stamp is None or stamp == self._desk_stamp:
            return False
        self._desk_stamp = stamp
        try:
            key = keys.load_x25519_public(self.cfg.alert_key)
        except Exception as exc:
            log.error(
                "alert desk key %s not reloaded, keeping the old one: %s", self.cfg.alert_key, exc
            )
            return False
        self._desk = key
        log.warning("regional %s: alert desk key changed: sealing to the new key", self.cfg.region)
        return True

    def _drain_alerts(self, within: float = 5.0) -> None:
        """At shutdown: send what is queued now (off the fixed rate, which no longer
        matters), wait for the broker to take it, and say what could not be sent."""
        infos = []
        while self._alerts and (info := self.flush_alerts()) is not None:
            infos.append(info)
        for info in infos:
            try:
                info.wait_for_publish(timeout=within)
            except (ValueError, RuntimeError) as exc:  # paho: link gone meanwhile
                log.warning("an alert batch may not have reached the broker: %s", exc)
        if self._alerts:
            log.warning(
                "regional %s: %d hit alert(s) not sent to the alert desk (broker away); "
                "they are in the audit trail",
                self.cfg.region,
                len(self._alerts),
            )

    def _forget(self, terminal_id: str) -> None:
        if self.sessions is not None:
            self.sessions.forget_terminal(terminal_id)

    # -- readiness and health --------------------------------------------------------------
    def _on_link(self, up: bool) -> None:
        """paho thread: the query subscription was granted (up) or the link was lost. The
        health file says so at once (not at the next interval), and systemd hears READY=1
        the first time."""
        try:
            self.write_health()
        except OSError as exc:
            log.error("health file %s not written: %s", self.cfg.health_file, exc)
        if up:
            log.warning("regional %s: ready (query subscription granted)", self.cfg.region)
            self._systemd.ready(f"serving region {self.cfg.region}")
        else:
            self._systemd.status("broker link lost; reconnecting")

    def health(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "t": round(self._clock(), 3),
            "region": self.cfg.region,
            "ready": self.link.ready.is_set(),
            "connected": self.link.connected.is_set(),
            "connects": self.link.connects,
            "counts": dict(self.counts),
            "answered": sum(self.counts[k] for k in ("NO_MATCH", "POSSIBLE_MATCH", "ERROR")),
            "refusals": dict(self.refusals),
            "sessions": len(self.sessions) if self.sessions is not None else 0,
            "terminals": len(self.terminals),
            "list_version": self.lookup.list_version,
            "audited": self.audit.written,
            "alerts_queued": len(self._alerts),
            "alert_desk": self._desk is not None,
        }

    def write_health(self) -> None:
        path = Path(self.cfg.health_file)
        # The interval thread and the link callback both write: one temporary file each.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self.health()))
        os.replace(tmp, path)

    def _every(self, interval: float, fn: Any, name: str) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    fn()
                except Exception:
                    log.exception("%s failed", name)

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def start(self) -> RegionalService:
        self.link.start()
        self._every(self.cfg.health_interval, self.write_health, "regional-health")
        self._every(self.cfg.refresh_interval, self.lookup.refresh, "sltd-refresh")
        self._every(1.0, self.terminals.poll, "terminals-reload")
        if self._desk is None:
            log.warning(
                "regional %s: no alert_key in the config: hit alerts are not sent (they are in "
                "the audit trail); run `fieldterm provision broker-config` again to add it",
                self.cfg.region,
            )
        else:
            self._every(self.cfg.alert_interval, self.flush_alerts, "alert-batches")
            self._every(1.0, self.reload_desk_key, "alert-key-reload")
        return self

    def run(self, stop: threading.Event) -> None:
        """Start and serve until ``stop`` is set (readiness is reported by ``_on_link``)."""
        self.start()
        self.write_health()  # "ready": false until the SUBACK
        while not stop.wait(1.0):
            pass
        self._systemd.stopping()
        self.stop()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)
        try:
            self._drain_alerts()
        except Exception:
            log.exception("alerts not drained at shutdown")
        self.link.close()
        self.audit.close()
        self.replay.close()
        self.lookup.close()
        try:
            self.write_health()
        except Exception:
            log.debug("final health write failed", exc_info=True)
        self._systemd.close()

    def __enter__(self) -> RegionalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
