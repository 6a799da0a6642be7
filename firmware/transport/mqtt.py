"""paho-mqtt 2.x adapter: one MQTT v5 link over mutual TLS, QoS 1, visible reconnects.

    link = MqttLink(broker, "kiosk-001", on_message=handle, subscriptions=[topic])
    link.start(); link.wait_connected(5.0)
    link.publish(topic, payload)          # QoS 1, thread-safe
    link.close()                          # idempotent

Design notes:
- ``on_message(topic, payload)`` runs on paho's network thread; it must not block.
  Subscriptions are (re)made in ``on_connect``, so a broker restart or a lost session
  never leaves the link deaf.
- Two events: :attr:`MqttLink.connected` is set on CONNACK; :attr:`MqttLink.ready` once
  the broker has also *granted* every subscription (SUBACK with no failure code), so
  nothing addressed to this link can be dropped for want of a subscription. ``on_link``
  reports ``True`` at ready and ``False`` when the link is lost. A refused subscription
  (an ACL that denies it) is logged and leaves the link connected but never ready.
- Reconnection is paho's own (``loop_start`` + ``reconnect_delay_set``) with a jittered
  first delay (:mod:`firmware.transport.reconnect`); every state change is logged and
  mirrored in the events and the ``on_link`` callback.
- No v5 ``Properties`` are built or read here: paho's property handling costs tens of
  microseconds per message and the sealed protocol carries everything in the payload.
- ``max_inflight_messages_set(0)`` makes paho's in-flight window unlimited (0 = no
  limit in paho 2.x), so a pipelined burst of QoS 1 queries is not throttled client-side.
- Dynamic subscriptions (:meth:`MqttLink.add_subscription`, :meth:`remove_subscription`;
  thread-safe) come and go while the link runs, each with its own handler routed by paho's
  ``message_callback_add``, so the main ``on_message`` never sees their messages. They are
  re-made after every reconnect (one SUBSCRIBE for all of them), play no part in
  ``connected``/``ready``, and a refusal in their SUBACK is logged and reported to the
  subscriber's ``on_result(topic_filter, granted, reason)`` (network thread; never block).
- Certificate times against authenticated time (``cert_time``, the kiosk's query client):
  a Pi without a clock boots behind, so TLS would refuse the broker certificate as "not
  yet valid" before any protocol message could tell the kiosk the time. With
  ``cert_time`` given, the TLS handshake checks the chain, the key usage and the host name
  but not the certificate times (OpenSSL's ``X509_V_FLAG_NO_CHECK_TIME``). The times of
  the broker's certificate are checked instead against ``cert_time()``, the regional's
  authenticated time, once that is known (on every connect, and at once through
  :meth:`MqttLink.check_peer_time`): a certificate outside its validity then closes the
  link (paho reconnects, and the check repeats). See docs/time.md for the trade-off.
- Why a kiosk is offline is logged at WARNING, the default level: every failed connect
  with its reason (TLS handshake error, refused, DNS, timeout, broker closed the
  connection, refused at CONNACK), every link lost, and the reconnect that ends an outage
  (how long it lasted, how many attempts). Repeats of the same reason are rate-limited
  (:class:`ConnectFailures`: the first at once, then at most one line per
  ``FAILURE_LOG_INTERVAL`` saying how many were folded in), so an outage of hours is a
  few dozen lines, not thousands.
- ``on_round_trip(seconds)`` hears the SUBSCRIBE -> SUBACK round trip of each connect
  (measured on ``timer``, monotonic): the query client's first round-trip sample.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.errors import ConfigError, OperationError, SetupError
from firmware.transport.reconnect import ReconnectPolicy

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]
OnSubResult = Callable[[str, bool, str], None]  # (topic filter, granted, reason code name)
Will = tuple[Any, ...]  # (topic, payload, retain) or (topic, payload, qos, retain)
#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h); Python's ssl module has no name for it.
NO_CHECK_TIME = 0x200000
#: The same connect-failure reason is logged at most once per this many seconds.
FAILURE_LOG_INTERVAL = 60.0


def set_will(client: Any, will: Will) -> None:
    """Register ``will`` ((topic, payload, retain) or (topic, payload, qos, retain); QoS 1
    when not given) as a paho client's last will."""
    topic, payload, *rest = will
    qos, retain = (1, rest[0]) if len(rest) == 1 else (rest[0], rest[1])
    client.will_set(topic, payload, qos=int(qos), retain=bool(retain))


def describe_connect_error(exc: BaseException | None, host: str, port: int) -> str:
    """A technician's reason for a failed connect (paho raised ``exc`` in reconnect)."""
    where = f"{host}:{port}"
    if exc is None:
        return f"connect to {where} failed (no detail from paho)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS handshake with {where} failed: the broker certificate was not accepted "
            f"({exc.verify_message or exc.reason}; check [broker] ca and the broker's certificate)"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed: {exc.reason or exc} "
            "(a refused or revoked kiosk certificate shows here too)"
        )
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup of {host!r} failed: {exc.strerror or exc} (check [broker] host)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused: is the broker running, is the port right?"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"connect to {where} timed out: no route or a dead link"
    if isinstance(exc, ConnectionError):
        return f"broker {where} closed the connection during connect: {exc}"
    return f"connect to {where} failed: {exc.__class__.__name__}: {exc}"


class ConnectFailures:
    """Rate-limited WARNING lines for failed connects, and the outage's summary.

    Each reason is logged at once the first time in an outage, then at most once per
    ``interval``, saying how many failures of that reason it folds in (two reasons that
    alternate are each limited on their own)."""

    def __init__(
        self,
        name: str,
        *,
        interval: float = FAILURE_LOG_INTERVAL,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.interval = interval
        self._timer = timer
        self._lock = threading.Lock()
        self.total = 0  # failures in the current outage
        self.logged = 0  # lines written for it
        self.first_at: float | None = None
        self.last_reason: str | None = None
        self._logged_at: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def failed(self, reason: str) -> None:
        with self._lock:
            now = self._timer()
            if self.first_at is None:
                self.first_at = now
            self.total += 1
            self.last_reason = reason
            if now - self._logged_at.get(reason, float("-inf")) < self.interval:
                self._folded[reason] = self._folded.get(reason, 0) + 1
                return
            if len(self._logged_at) > 64:  # reasons can embed details; keep this bounded
                self._logged_at.clear()
                self._folded.clear()
            folded = self._folded.pop(reason, 0)
            self._logged_at[reason] = now
            self.logged += 1
        more = f" ({folded} more failed attempts since the last line)" if folded else ""
        log.warning("mqtt %s: %s; retrying%s", self.name, reason, more)

    def lost(self) -> None:
        """The link was lost: the outage starts now (for the reconnect's summary)."""
        with self._lock:
            if self.first_at is None:
                self.first_at = self._timer()

    def succeeded(self) -> str:
        """Connected: end the outage; returns its summary ("" if there was none)."""
        with self._lock:
            total, first, reason = self.total, self.first_at, self.last_reason
            self.total, self.first_at, self.last_reason = 0, None, None
            self._folded, self._logged_at = {}, {}
            now = self._timer()
        if first is None:
            return ""
        tail = f", {total} failed attempts (last: {reason})" if total else ""
        return f" after {now - first:.1f} s offline{tail}"


@dataclass(frozen=True)
class BrokerConfig:
    """The ``[broker]`` section: where the broker is and the TLS identity to show it."""

    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    keepalive: int = 30

    @classmethod
    def from_section(cls, sec: Any) -> BrokerConfig:
        """From a :class:`firmware.config.Section` named ``broker`` (errors name the key)."""
        cfg = cls(
            host=sec.text("host"),
            port=sec.integer("port", lo=1, hi=65535),
            ca=sec.path("ca"),
            cert=sec.path("cert"),
            key=sec.path("key"),
            keepalive=sec.integer("keepalive", 30, lo=5, hi=3600),
        )
        for name in ("ca", "cert", "key"):
            if not getattr(cfg, name).is_file():
                raise ConfigError(
                    f"file not found: {getattr(cfg, name)}",
                    field=f"broker.{name}",
                    source=sec.source,
                )
        return cfg

    def ssl_context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca))
            ctx.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise SetupError(f"broker TLS files unusable: {exc}") from exc
        return ctx


class MqttLink:
    """One MQTT v5 connection with client-certificate TLS, QoS 1 and paho's reconnects."""

    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        *,
        on_message: OnMessage,
        subscriptions: Sequence[str] = (),
        will: Will | None = None,
        on_link: Callable[[bool], None] | None = None,
        reconnect_min: int = 1,
        reconnect_max: int = 5,
        cert_time: Callable[[], float | None] | None = None,
        on_round_trip: Callable[[float], None] | None = None,
        timer: Callable[[], float] = time.monotonic,
        session_expiry: int = 0,
    ):
        """``cert_time``: check the broker certificate's times against this authenticated
        time (None while unknown) instead of the local clock (see the module doc).

        ``session_expiry`` (seconds; 0: none): keep the MQTT session, with its
        subscriptions and the QoS 1 messages not yet delivered, across a lost link and a
        broker restart (the broker's persistence keeps it), and resume it at every
        connect (``clean_start`` false). A reader that must not miss a message the broker
        accepted (the alert desk, the console) sets it."""
        self._session_expiry = int(session_expiry)
        self.broker = broker
        self.client_id = client_id
        self.subscriptions = tuple(subscriptions)
        self.connected = threading.Event()
        self.ready = threading.Event()
        self.refused_subscriptions: tuple[str, ...] = ()
        self.connects = 0
        self.disconnects = 0
        self._on_message = on_message
        self._on_link = on_link
        self._closed = False
        self._started = False
        self._lock = threading.Lock()
        self._sub_mid: int | None = None
        # dynamic subscriptions: filter -> (handler, on_result); SUBSCRIBE mid -> filters
        self._dynamic: dict[str, tuple[OnMessage, OnSubResult | None]] = {}
        self._dyn_mids: dict[int, tuple[str, ...]] = {}
        self._retired: set[str] = set()  # removed, not yet confirmed by an UNSUBACK
        self._unsub_mids: dict[int, tuple[str, ...]] = {}
        self._cert_time = cert_time
        self._on_round_trip = on_round_trip
        self._timer = timer
        self._sub_sent_at: float | None = None
        self.failures = ConnectFailures(client_id, timer=timer)
        self._socket_error: str | None = None  # paho's last socket error (on_log)
        self._refused_here = False  # this attempt's failure is logged already (CONNACK)
        #: The broker certificate's (notBefore, notAfter) as Unix times, from the last connect.
        self.peer_validity: tuple[float, float] | None = None
        self.cert_time_refusals = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        ctx = broker.ssl_context()
        if cert_time is not None:
            ctx.verify_flags |= NO_CHECK_TIME
        c.tls_set_context(ctx)
        c.max_inflight_messages_set(0)  # 0 = unlimited in paho 2.x
        c.max_queued_messages_set(0)
        # A first delay of its own per link (jitter), so a fleet that lost the broker in
        # one instant does not come back in one instant (firmware/transport/reconnect.py);
        # paho's delays are floats in practice, its stub says int.
        backoff = ReconnectPolicy(first=reconnect_min, cap=reconnect_max)
        c.reconnect_delay_set(backoff.first_delay(), reconnect_max)  # type: ignore[arg-type]
        if will is not None:
            set_will(c, will)
        c.on_connect = self._connected_cb
        c.on_disconnect = self._disconnected_cb
        c.on_message = self._message_cb
        c.on_subscribe = self._subscribed_cb
        c.on_unsubscribe = self._unsubscribed_cb
        c.on_connect_fail = self._connect_failed_cb
        c.on_log = self._paho_log_cb
        self._client = c

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> MqttLink:
        """Begin connecting in the background (returns at once; see :meth:`wait_connected`)."""
        with self._lock:
            if self._started or self._closed:
                return self
            self._started = True
        if self._session_expiry > 0:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry
            self._client.connect_async(
                self.broker.host, self.broker.port, self.broker.keepalive,
                clean_start=False, properties=props,
            )  # fmt: skip
        else:
            self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Wait for CONNACK (the broker admitted us; subscriptions may still be pending)."""
        return self.connected.wait(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected *and* every subscription is granted (see the module doc)."""
        return self.ready.wait(timeout)

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._client.disconnect()
        except Exception:
            log.debug("disconnect failed", exc_info=True)
        try:
            self._client.loop_stop()
        except AttributeError:
            # paho 2.x: its network thread may end by itself after the DISCONNECT and clear
            # its handle between loop_stop's check and its join; it is stopped either way.
            log.debug("paho's network thread had already ended")
        self.connected.clear()
        self.ready.clear()

    def __enter__(self) -> MqttLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- traffic ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """Queue a publish (thread-safe). QoS 1 messages sent while offline are kept by
        paho and delivered after the reconnect."""
        if self._closed:
            raise OperationError("publish on a closed MQTT link")
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    # -- dynamic subscriptions (thread-safe; see the module doc) ---------------------------
    def add_subscription(
        self, topic_filter: str, handler: OnMessage, on_result: OnSubResult | None = None
    ) -> None:
        """Subscribe ``topic_filter`` (QoS 1) now if connected, and after every reconnect;
        its messages go to ``handler(topic, payload)`` on the network thread. Adding a
        filter already held replaces its handler (and subscribes again: the broker then
        re-sends its retained message)."""
        if self._closed:
            raise OperationError("subscribe on a closed MQTT link")

        def route(_c: Any, _u: Any, msg: Any) -> None:
            try:
                handler(msg.topic, msg.payload)
            except Exception:
                log.exception("mqtt %s: handler for %s failed", self.client_id, topic_filter)

        self._client.message_callback_add(topic_filter, route)
        with self._lock:
            self._dynamic[topic_filter] = (handler, on_result)
            self._retired.discard(topic_filter)
            if self.connected.is_set():
                self._subscribe_dynamic(self._client, (topic_filter,))

    def remove_subscription(self, topic_filter: str) -> None:
        """Unsubscribe ``topic_filter`` and drop its handler; unknown filters are ignored.
        Until the broker confirms (UNSUBACK), messages still arriving for it are dropped,
        never handed to the main ``on_message``."""
        self._client.message_callback_remove(topic_filter)
        with self._lock:
            if self._dynamic.pop(topic_filter, None) is None:
                return
            self._retired.add(topic_filter)
            if self.connected.is_set() and not self._closed:
                self._unsubscribe_retired(self._client, (topic_filter,))

    def dynamic_subscriptions(self) -> tuple[str, ...]:
        """The dynamic filters held now (granted or not)."""
        with self._lock:
            return tuple(self._dynamic)

    def _subscribe_dynamic(self, client: Any, filters: Sequence[str]) -> None:
        # caller holds self._lock, so the SUBACK (network thread) finds the mid recorded
        rc, mid = client.subscribe([(t, 1) for t in filters])
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._dyn_mids[mid] = tuple(filters)
        # otherwise not connected after all: on_connect makes them again

    def _unsubscribe_retired(self, client: Any, filters: Sequence[str]) -> None:
        # caller holds self._lock; a session kept by the broker may still hold these
        rc, mid = client.unsubscribe(list(filters))
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._unsub_mids[mid] = tuple(filters)

    def _unsubscribed_cb(self, _c: Any, _u: Any, mid: int, *_rest: Any) -> None:
        with self._lock:
            for t in self._unsub_mids.pop(mid, ()):
                if t not in self._dynamic:
                    self._retired.discard(t)

    def _retired_topic(self, topic: str) -> bool:
        with self._lock:
            return topic in self._retired or any(
                mqtt.topic_matches_sub(f, topic) for f in self._retired if "+" in f or "#" in f
            )

    def _dynamic_suback(self, mid: int, reason_codes: Any) -> None:
        with self._lock:
            filters = self._dyn_mids.pop(mid, ())
            results = [
                (t, rc, self._dynamic.get(t, (None, None))[1])
                for t, rc in zip(filters, reason_codes, strict=False)
                if t in self._dynamic
            ]
        for topic, rc, on_result in results:
            granted = not getattr(rc, "is_failure", False)
            if not granted:
                log.error(
                    "mqtt %s: the broker refused subscription %s (%s) "
                    "(check the broker's ACL for this identity)",
                    self.client_id,
                    topic,
                    rc,
                )
            if on_result is not None:
                try:
                    on_result(topic, granted, str(rc))
                except Exception:
                    log.exception("mqtt %s: on_result for %s failed", self.client_id, topic)

    # -- paho callbacks (network thread; never block) --------------------------------------
    def _connect_failed_cb(self, _c: Any, _u: Any) -> None:
        """paho's reconnect raised (it calls this inside its ``except OSError``)."""
        exc = sys.exc_info()[1]
        self.failures.failed(describe_connect_error(exc, self.broker.host, self.broker.port))

    def _paho_log_cb(self, _c: Any, _u: Any, level: int, buf: str) -> None:
        """Keep paho's last socket error: the detail of a connection the broker closed."""
        if level == mqtt.MQTT_LOG_ERR and "socket" in buf:
            self._socket_error = buf

    def _connected_cb(self, client: Any, _u: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            self._refused_here = True
            self.failures.failed(
                f"broker refused the connection at CONNACK: {rc} "
                "(an unknown, revoked or misbound client identity)"
            )
            return
        if self._cert_time is not None:
            self.peer_validity = self._read_peer_validity(client)
            if not self.check_peer_time(client):
                self._refused_here = True  # logged at ERROR by check_peer_time
                return
        self.connects += 1
        self._socket_error = None
        outage = self.failures.succeeded()
        log.log(
            logging.WARNING if outage or self.connects > 1 else logging.INFO,
            "mqtt %s: connected to %s:%d (connection %d)%s",
            self.client_id,
            self.broker.host,
            self.broker.port,
            self.connects,
            outage,
        )
        self.connected.set()
        if not self.subscriptions:
            self._set_ready()
        else:
            # One SUBSCRIBE for every filter, so one SUBACK says whether the link is ready.
            self._sub_sent_at = self._timer()
            _rc, self._sub_mid = client.subscribe([(t, 1) for t in self.subscriptions])
        with self._lock:
            self._dyn_mids.clear()
            self._unsub_mids.clear()
            if self._dynamic:
                self._subscribe_dynamic(client, tuple(self._dynamic))
            if self._retired:
                self._unsubscribe_retired(client, tuple(self._retired))

    # -- certificate times against authenticated time (see the module doc) -----------------
    @staticmethod
    def _read_peer_validity(client: Any) -> tuple[float, float] | None:
        """The verified broker certificate's times (ssl's own parse: the kiosk process
        does not load cryptography's X.509 code)."""
        sock = client.socket()
        cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
        if not cert or "notBefore" not in cert or "notAfter" not in cert:
            return None
        nb, na = str(cert["notBefore"]), str(cert["notAfter"])
        return float(ssl.cert_time_to_seconds(nb)), float(ssl.cert_time_to_seconds(na))

    def check_peer_time(self, client: Any = None) -> bool:
        """True unless authenticated time is known and the broker certificate is outside
        its validity then; in that case the connection is closed (paho reconnects and the
        check repeats). Safe from any thread."""
        now = self._cert_time() if self._cert_time is not None else None
        if now is None or self.peer_validity is None:
            return True
        nb, na = self.peer_validity
        if nb <= now <= na:
            return True
        self.cert_time_refusals += 1
        log.error(
            "mqtt %s: the broker certificate is valid %s .. %s, not at the regional's time "
            "%s: link closed (renew the broker certificate)",
            self.client_id,
            *(dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in (nb, na, now)),
        )
        sock = (client or self._client).socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("socket shutdown failed", exc_info=True)
        return False

    def _subscribed_cb(
        self, _c: Any, _u: Any, mid: int, reason_codes: Any, _props: Any = None
    ) -> None:
        if mid != self._sub_mid:
            self._dynamic_suback(mid, reason_codes)
            return
        refused = tuple(
            f"{topic} ({rc})"
            for topic, rc in zip(self.subscriptions, reason_codes, strict=False)
            if getattr(rc, "is_failure", False)
        )
        self.refused_subscriptions = refused
        sent, self._sub_sent_at = self._sub_sent_at, None
        if sent is not None and self._on_round_trip is not None:
            try:
                self._on_round_trip(max(0.0, self._timer() - sent))
            except Exception:
                log.exception("mqtt %s: on_round_trip callback failed", self.client_id)
        if refused:
            log.error(
                "mqtt %s: the broker refused subscription(s) %s: not ready "
                "(check the broker's ACL for this identity)",
                self.client_id,
                ", ".join(refused),
            )
            return
        self._set_ready()

    def _set_ready(self) -> None:
        log.info("mqtt %s: ready (subscriptions granted)", self.client_id)
        self.ready.set()
        self._notify(True)

    def _disconnected_cb(self, _c: Any, _u: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        was = self.ready.is_set()
        detail, self._socket_error = self._socket_error, None
        why = f"{rc}" + (f"; {detail}" if detail else "")
        refused_here, self._refused_here = self._refused_here, False
        if self._closed or refused_here:
            pass
        elif self.connected.is_set() and not was:
            log.warning("mqtt %s: link lost before it was ready (%s)", self.client_id, why)
        elif not self.connected.is_set():
            # TLS went through but the broker closed before CONNACK: with TLS 1.3 a
            # refused client certificate shows here, not in the handshake.
            self.failures.failed(
                f"broker {self.broker.host}:{self.broker.port} closed the connection before "
                f"CONNACK ({why}; is this kiosk's certificate valid and not revoked?)"
            )
        self.connected.clear()
        self.ready.clear()
        self._sub_mid = None
        if not self._closed:
            self.failures.lost()
        if was:
            self.disconnects += 1
            if not self._closed:
                log.warning("mqtt %s: link lost (%s); paho reconnects", self.client_id, why)
            self._notify(False)

    def _message_cb(self, _c: Any, _u: Any, msg: Any) -> None:
        if self._retired and self._retired_topic(msg.topic):
            log.debug("mqtt %s: dropped a message for a removed subscription", self.client_id)
            return
        try:
            self._on_message(msg.topic, msg.payload)
        except Exception:
            log.exception("mqtt %s: message handler failed", self.client_id)

    def _notify(self, up: bool) -> None:
        if self._on_link is not None:
            try:
                self._on_link(up)
            except Exception:
                log.exception("mqtt %s: on_link callback failed", self.client_id)
