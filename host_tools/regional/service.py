"""The regional service: opens sealed queries, looks them up, answers, alerts, audits.

Per query (paho's network thread, kept short on purpose):
terminal from topic -> ``RegionalSessions.open_query`` (AEAD; public-key work only for a
new session ticket) -> shared replay store -> ``SltdLookup.lookup`` -> ``Response`` ->
``seal_response`` -> publish to the terminal's response topic (QoS 1). A hit also
queues its alert durably with the audit row; a timer publishes one sealed, fixed-size alert batch (empty or not)
every ``alert_interval`` seconds to the alert desk (firmware/protocol/alerts.py), so the
broker cannot tell when hits happen. Refused queries (tampered, replayed, foreign keys, revoked
terminal, stale) get no answer at all; they are counted by reason and audited. The one
exception is an authentic query whose time is outside the window (refusal ``window``): it
is answered, once per nonce and at most :data:`HINTS_PER_MINUTE` times a minute per
terminal, with a signed time hint, so a kiosk with a wrong clock gets its real answer one
round trip later (docs/time.md). The skew seen is in the health (``clock``).

Hit and miss take the same path up to the reply: the audit row is queued for both, and the
reply is published by the audit writer once the row is committed; a hit's row carries its
alert body, which the writer inserts into the durable alert queue in the same transaction
(issue 14: a SIGKILL no longer loses queued alerts). The alert is signed by the batch
timer, not on the paho thread (paho writes the reply to the socket only after
``on_query`` returns, so an Ed25519 signature here made hits ~0.3 ms slower at the broker).
A broker that times the answers learns nothing (docs/protocol.md). Before any public-key work a
:class:`~host_tools.regional.guard.RefusalGuard` refuses a known-bad ticket and a terminal
that has spent its refusal budget (under the ticket's first reason, or ``rate_limited``): a
flood of junk from one certificate no longer delays the others. ``rate_limited`` refusals
are counted each time but audited and logged at most once a second per terminal, so the
flood does not flood the audit trail either.

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

import datetime as dt
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from pathlib import Path
from typing import Any

from firmware.errors import EnvelopeError
from firmware.protocol import keys, topics
from firmware.protocol.dockey import keyed_hash64
from firmware.protocol.messages import Response, encode_response_body
from firmware.protocol.session import OutOfWindow, RegionalSessions
from firmware.systemd import SystemdNotifier
from firmware.transport.mqtt import MqttLink
from host_tools.regional.alert_batcher import AlertBatcher, AlertQueue, hit_alert
from host_tools.regional.audit import AnchorStore, AuditTrail
from host_tools.regional.config import RegionalConfig
from host_tools.regional.guard import RefusalGuard
from host_tools.regional.list_publishing import ListPublishing
from host_tools.regional.replay import ReplayStore
from host_tools.regional.terminals import TerminalRegistry
from host_tools.sltd.lookup import SltdLookup, read_index_key
from host_tools.sltd.records import SltdRecord, Status

log = logging.getLogger(__name__)

#: Time hints per terminal per minute, at most (each costs an Ed25519 signature).
HINTS_PER_MINUTE = 60
#: Terminals whose last clock skew the health reports (most recent first).
SKEW_TERMINALS = 256
#: The record a miss's decoy work describes (see RegionalService._decoy_hit_work).
_DECOY_RECORD = SltdRecord(
    "UTO", "P", "L898902C3", Status.STOLEN, "UTO", dt.date(2026, 1, 1), "UTO/2026/0000000"
)


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
        self.lookup = SltdLookup.open(cfg.sltd_db, self._index_key, index_dir=cfg.index_dir)
        self.sessions: RegionalSessions | None = None
        self.terminals = TerminalRegistry(cfg.terminals, on_forget=self._forget)
        self.sessions = RegionalSessions(
            region=cfg.region,
            kem_private=keys.load_x25519_private(cfg.kem_key),
            terminal_keys=self.terminals.keys,
            window=cfg.replay_window,
            max_sessions=cfg.max_sessions,
        )
        self.guard = RefusalGuard(
            refusal_burst=cfg.refusal_burst,
            refusal_rate=cfg.refusal_rate,
            max_negative=cfg.max_refused_tickets,
        )
        self._cheap_audited: dict[tuple[str, str], float] = {}
        self.replay = ReplayStore(cfg.replay_db, cfg.replay_window)
        self.audit = AuditTrail(cfg.audit_db, retention=cfg.audit_retention_days * 86400.0)
        self.anchors = AnchorStore(cfg.audit_db)  # the kiosks' audit heads (docs/protocol.md)
        # The hit alerts' durable queue lives in the audit database (written with the rows).
        self.alert_queue = AlertQueue(
            cfg.audit_db, lease=max(5.0, 5 * cfg.alert_interval), clock=clock
        )
        self.alerts = AlertBatcher(
            cfg.region,
            self._sign_key,
            cfg.alert_key,
            queue=self.alert_queue,
            # self.link is made below; these look it up when alerts flow
            publish=lambda topic, payload: self.link.publish(topic, payload),  # noqa: PLW0108
            connected=lambda: self.link.connected.is_set(),  # noqa: PLW0108
            clock=clock,
            counts=self.counts,
        )
        self._qdirect = topics.per_terminal_prefix(cfg.region, "q")
        # terminal -> (skew s, when) of its last out-of-window query; terminal -> hint times
        self.skews: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._hint_times: dict[str, deque[float]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._systemd = SystemdNotifier()
        self.link = MqttLink(
            cfg.broker,
            client_id or f"regional-{os.uname().nodename}-{os.getpid()}",
            on_message=self.on_query,
            subscriptions=topics.query_subscriptions(cfg.region, cfg.share_group),
            on_link=self._on_link,
        )
        self.list_publishing = ListPublishing(
            cfg, self.lookup.store, self._sign_key, self.link, clock=clock
        )

    # -- the hot path (paho thread) --------------------------------------------------------
    def on_query(self, topic: str, payload: bytes) -> None:
        now = self._clock()
        if topic.startswith(self._qdirect):  # a kiosk on this broker
            terminal, site = topic[len(self._qdirect) :], None
        else:  # a kiosk behind a site broker: answered by the same route
            try:
                terminal, site = topics.query_route(self.cfg.region, topic)
            except EnvelopeError:
                self._refuse_unopened(now, topic[-64:], "malformed")
                return
        assert self.sessions is not None
        cheap = self.guard.check(terminal, payload, self.sessions.has_session)
        if cheap == "rate_limited":
            self._refuse_unopened(now, terminal, cheap)
            return
        if cheap:  # the negative cache: this ticket was refused before, for this reason
            self.guard.refused(terminal, payload, cheap, known=True)
            self._refuse(now, terminal, None, cheap)
            return
        try:
            q = self.sessions.open_query(terminal, payload, now)
        except OutOfWindow as exc:
            self._refuse(now, terminal, exc.stale.query_id, "window")
            self._time_hint(exc, now, site)
            return
        except EnvelopeError as exc:
            reason = getattr(exc, "reason", None) or "invalid"
            self.guard.refused(terminal, payload, reason)
            self._refuse(now, terminal, None, reason)
            return
        if not self.replay.first_use(q.nonce, now):
            self.guard.refused(terminal, payload, "replay")
            self._refuse(now, terminal, q.query_id, "replay")
            return
        lk = self.lookup
        version = lk.list_version
        # the kiosk's audit head on record, for a kiosk that sends its own (issue 14)
        anchor = self.anchors.get(q.terminal_id) if q.audit_head is not None else None
        if anchor is not None and q.audit_head is not None and q.audit_head[0] < anchor[0]:
            self._anchor_behind(q.terminal_id, q.audit_head[0], anchor[0])
        try:
            rec = lk.lookup(q.dk)
        except Exception:
            log.exception("lookup failed")
            rec, outcome = None, "ERROR"
            resp = Response(
                q.query_id, "ERROR", list_version=version, reason="lookup failed", anchor=anchor
            )
        else:
            if rec is None:
                outcome = "NO_MATCH"
                resp = Response(q.query_id, outcome, list_version=version, anchor=anchor)
                self._decoy_hit_work(q.dk, anchor)
            else:
                outcome = "POSSIBLE_MATCH"
                resp = Response(
                    q.query_id, outcome, list_version=version, record=record_details(rec),
                    anchor=anchor,
                )  # fmt: skip
        topic = topics.reply_topic(self.cfg.region, q.terminal_id, site)
        sealed = self.sessions.seal_response(q, resp)
        self.counts[outcome] += 1
        dkh = keyed_hash64(self._index_key, q.dk).to_bytes(8, "big").hex()
        # The answer goes out once its audit row (and a hit's alert) is durable (issue 14).
        alert = None
        if rec is not None:  # queued with the row; signed later by the batch timer
            alert = hit_alert(self.cfg.region, q, now=now, dkh=dkh, rec=rec, list_version=version)
        self.audit.record(
            now, q.terminal_id, q.query_id, dkh, outcome, version,
            then=lambda: self.link.publish(topic, sealed), alert=alert, head=q.audit_head,
        )  # fmt: skip

    def _anchor_behind(self, terminal: str, seq: int, recorded: int) -> None:
        """A kiosk's audit head went back (its log was cut, deleted or replaced): counted
        (health ``counts.audit_anchor_behind``) and logged; the kiosk raises the alarm."""
        self.counts["audit_anchor_behind"] += 1
        log.warning(
            "terminal %s: audit head seq %d is below the %d on record: its audit log was "
            "cut, deleted or replaced (the kiosk is told)",
            terminal,
            seq,
            recorded,
        )

    def _decoy_hit_work(self, dk: Any, anchor: tuple[int, str] | None = None) -> None:
        """For a miss, the work a hit does beyond it before the reply (a store read, the
        record's details, a response body with a record), thrown away: the index answers a
        miss without the store, which made hits ~12 us slower on the way to the reply."""
        try:
            got = self.lookup.store.get(dk.issuing_state, dk.category, dk.number)
        except Exception:  # a decoy: its failure is nobody's business
            return
        encode_response_body(
            Response(
                bytes(16), "POSSIBLE_MATCH", 0, record_details(got or _DECOY_RECORD), None, anchor
            )
        )

    def _refuse_unopened(self, now: float, terminal: str, reason: str) -> None:
        """A query the guard refused before any crypto: counted always, audited and logged
        at most once a second per terminal and reason."""
        self.refusals[reason] += 1
        self.counts["refused"] += 1
        key = (terminal[:64], reason)
        if now - self._cheap_audited.get(key, float("-inf")) >= 1.0:
            if len(self._cheap_audited) > 10_000:
                self._cheap_audited.clear()
            self._cheap_audited[key] = now
            self.audit.record(now, key[0], None, None, f"REFUSED:{reason}", None)
            log.info("refused queries from %r unopened: %s", key[0], reason)

    def _refuse(self, now: float, terminal: str, query_id: bytes | None, reason: str) -> None:
        self.refusals[reason] += 1
        self.counts["refused"] += 1
        self.audit.record(now, terminal[:64], query_id, None, f"REFUSED:{reason}", None)
        log.info("refused a query from %r: %s", terminal[:64], reason)

    # -- time hints (docs/time.md) --------------------------------------------------------
    def _time_hint(self, exc: OutOfWindow, now: float, site: str | None = None) -> None:
        """Answer an authentic out-of-window query with a signed time hint: once per nonce
        (the replay store), at most HINTS_PER_MINUTE per terminal."""
        st = exc.stale
        skew = st.timestamp - now
        self.skews[st.terminal_id] = (round(skew, 3), round(now, 3))
        self.skews.move_to_end(st.terminal_id, last=False)
        while len(self.skews) > SKEW_TERMINALS:
            self.skews.popitem()
        recent = self._hint_times.setdefault(st.terminal_id, deque())
        while recent and recent[0] < now - 60.0:
            recent.popleft()
        if len(recent) >= HINTS_PER_MINUTE:
            self.counts["time_hints_limited"] += 1
            return
        if not self.replay.first_use(st.nonce, now):
            self.counts["time_hints_replayed"] += 1
            return
        recent.append(now)
        assert self.sessions is not None
        payload = self.sessions.seal_time_hint(st, now, self._sign_key)
        self.link.publish(topics.reply_topic(self.cfg.region, st.terminal_id, site), payload)
        self.counts["time_hints"] += 1
        log.warning(
            "terminal %s: clock %+.1f s off the regional's; sent a time hint",
            st.terminal_id,
            skew,
        )

    def clock_health(self) -> dict[str, Any]:
        """The kiosks' clock skew as seen in out-of-window queries (query time minus the
        regional's): the largest, the last, and per terminal (most recent first)."""
        if not self.skews:
            return {"hints": self.counts["time_hints"], "max_abs_skew_s": 0.0, "last": None}
        last_tid, (last_skew, last_at) = next(iter(self.skews.items()))
        worst = max(self.skews.items(), key=lambda kv: abs(kv[1][0]))
        return {
            "hints": self.counts["time_hints"],
            "max_abs_skew_s": abs(worst[1][0]),
            "max_terminal": worst[0],
            "last": {"terminal": last_tid, "skew_s": last_skew, "at": last_at},
            "terminals": {t: {"skew_s": k, "at": a} for t, (k, a) in self.skews.items()},
        }

    # -- hit alerts (host_tools/regional/alert_batcher.py) --------------------------------
    @property
    def _desk(self) -> Any:
        """The alert desk's public key, or None when alerts are not sent."""
        return self.alerts.desk

    def flush_alerts(self) -> Any:
        """One sealed alert batch now (:meth:`AlertBatcher.flush`): what the timer calls."""
        return self.alerts.flush()

    def reload_desk_key(self) -> bool:
        """A rotated desk key: :meth:`AlertBatcher.reload_desk_key`."""
        return self.alerts.reload_desk_key()

    def _drain_alerts(self, within: float = 5.0) -> None:
        self.alerts.drain(within)

    def _forget(self, terminal_id: str) -> None:
        if self.sessions is not None:
            self.sessions.forget_terminal(terminal_id)

    def _poll_terminals(self) -> None:
        """terminals.json reload; a change may make a refused ticket good, so the negative
        cache goes (the paho thread may be checking it: a cleared dict is safe to read)."""
        if self.terminals.poll():
            self.guard.forget_tickets()

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
            "bad_tickets_cached": len(self.guard),
            "bad_ticket_hits": self.guard.hits,
            "audit_pruned": self.audit.pruned,
            "sessions": len(self.sessions) if self.sessions is not None else 0,
            "terminals": len(self.terminals),
            "terminals_reloads": self.terminals.reloads,
            "list_version": self.lookup.list_version,
            "audited": self.audit.written,
            "audit_failed": self.audit.failed,
            "alerts_queued": len(self.alerts),  # in the shared queue: every process's
            "alert_epoch": self.alert_queue.epoch,
            "alert_desk": self._desk is not None,
            "offline_list": self.list_publishing.health(),
            "clock": self.clock_health(),
            "alarms": [*self.replay.alarms, *self.audit.alarms],  # damaged stores put aside
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
        self._every(1.0, self._poll_terminals, "terminals-reload")
        self.list_publishing.start()
        if self._desk is None:
            log.warning(
                "regional %s: no alert_key in the config: hit alerts are queued, not sent "
                "(they are in the audit trail); run `fieldterm provision broker-config` again to add it",
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
        self.audit.close()  # commits what is queued, publishes those answers (link still up)
        try:
            self._drain_alerts()
        except Exception:
            log.exception("alerts not drained at shutdown (they stay queued)")
        self.list_publishing.stop()
        self.link.close()
        self.replay.close()
        self.lookup.close()
        try:
            self.write_health()
        except Exception:
            log.debug("final health write failed", exc_info=True)
        self.alert_queue.close()
        self.anchors.close()
        self._systemd.close()

    def __enter__(self) -> RegionalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
