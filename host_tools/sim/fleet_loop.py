"""One event loop for many paho MQTT links: the fleet simulator's network core.

A kiosk's :class:`~firmware.client.client.QueryClient` normally owns an
:class:`~firmware.transport.mqtt.MqttLink`, which runs paho's own network thread. Ten
thousand of those would be ten thousand threads. :class:`LoopLink` is a drop-in link for
``QueryClient(link_factory=...)`` that is driven instead through paho's external-loop
interface by one :class:`FleetLoop`:

- ``on_socket_open`` / ``on_socket_close`` register and unregister the socket with one
  :mod:`selectors` selector; ``on_socket_register_write`` / ``unregister_write`` mark a
  link as having bytes to send; the loop calls ``loop_read`` (and again while the TLS
  object still holds decrypted bytes, ``sock.pending()``), ``loop_write`` and, once a
  second per link, ``loop_misc`` (keepalive).
- paho's ``reconnect()`` would do the TCP connect and the TLS handshake blocking (inside
  ``_create_socket``). The loop does both itself, non-blocking: a non-blocking
  ``connect``, then ``SSLSocket.do_handshake()`` driven by the selector on
  ``SSLWantReadError``/``SSLWantWriteError``, with paho's 5 s connect timeout; only then
  does it call ``reconnect()``, whose ``_create_socket`` (:class:`_ReadySocketClient`)
  returns that socket. So the loop never blocks on a handshake, a whole fleet's handshakes
  are in flight at once as real kiosks' would be, and there are no connect threads
  (threads doing handshakes starve a loop thread of the GIL: the convoy effect).
  Publishes made while a link is connecting wait and go out after it.
- Reconnects follow the kiosk's own policy
  (:data:`firmware.transport.reconnect.KIOSK_RECONNECT`): a first delay drawn once per
  link with jitter, doubled per failed attempt up to the cap, reset by a CONNACK.
- No v5 ``Properties``, QoS 1, unlimited in-flight window: as :class:`MqttLink`.

Everything except :meth:`FleetLoop.call_soon_threadsafe` and the connect workers runs on
the loop thread; paho callbacks (``on_message`` included) therefore run there too.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import random
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from firmware.transport.mqtt import BrokerConfig, Will, set_will
from firmware.transport.reconnect import KIOSK_RECONNECT, ReconnectPolicy

log = logging.getLogger(__name__)

MISC_PERIOD = 1.0  # each link's loop_misc (keepalive) runs about this often
CONNECT_TIMEOUT = 5.0  # paho's default connect timeout (TCP connect and TLS handshake)


class _ReadySocketClient(mqtt.Client):
    """A paho client whose ``reconnect()`` takes a socket the loop has already connected
    and TLS-handshaken (paho's own ``_create_socket`` would block doing both)."""

    ready_socket: Any = None

    def _create_socket(self) -> Any:
        sock, self.ready_socket = self.ready_socket, None
        if sock is None:
            raise OSError(errno.ENOTCONN, "no connected socket prepared by the fleet loop")
        return sock


class FleetLoop:
    """A selector loop with timers, thread-safe calls and a bounded connect pool."""

    def __init__(
        self,
        *,
        policy: ReconnectPolicy = KIOSK_RECONNECT,
        rng: random.Random | None = None,
    ):
        self.policy = policy
        self.rng = rng or random.Random()
        self.sel = selectors.DefaultSelector()
        self._calls: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.links: list[LoopLink] = []
        self._dirty: set[LoopLink] = set()
        self._misc_at = 0
        self.thread_id: int | None = None
        self.connecting = 0
        self.connect_failures = 0

    # -- scheduling ------------------------------------------------------------------------
    def on_loop_thread(self) -> bool:
        return self.thread_id is None or threading.get_ident() == self.thread_id

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        self._calls.append(fn)
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the loop is awake already (the pipe is full)

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread at monotonic time ``when`` (loop thread only)."""
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(time.monotonic() + delay, fn)

    # -- one turn --------------------------------------------------------------------------
    def run_once(self, max_wait: float = 0.05) -> None:
        """Wait for I/O (at most ``max_wait`` or until the next timer), handle it, run due
        timers and thread-safe calls, flush writes, keepalive a slice of links."""
        now = time.monotonic()
        wait = max_wait
        if self._timers:
            wait = max(0.0, min(wait, self._timers[0][0] - now))
        if self._calls or self._dirty:
            wait = 0.0
        for key, events in self.sel.select(wait):
            link = key.data
            if link is None:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
                continue
            if events & selectors.EVENT_READ:
                link._readable()
            if events & selectors.EVENT_WRITE:
                link._writable()
        while self._calls:
            self._calls.popleft()()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        self._flush_writes()
        self._keepalive_slice(max_wait)

    def _flush_writes(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            for link in dirty:
                link._flush()

    def _keepalive_slice(self, turn: float) -> None:
        n = len(self.links)
        if not n:
            return
        k = max(1, int(n * max(turn, 0.001) / MISC_PERIOD) + 1)
        for _ in range(min(k, n)):
            self._misc_at = (self._misc_at + 1) % n
            self.links[self._misc_at]._misc()

    def close(self) -> None:
        for link in list(self.links):
            link.close()
        for _ in range(20):
            self.run_once(0.01)
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()


class LoopLink:
    """An :class:`~firmware.transport.mqtt.MqttLink` look-alike on a :class:`FleetLoop`.

    Same constructor arguments as MqttLink (plus ``loop``), the same ``connected`` /
    ``ready`` events, ``publish``, ``start``, ``close`` and ``check_peer_time``.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        *,
        loop: FleetLoop,
        on_message: Callable[[str, bytes], None],
        subscriptions: Sequence[str] = (),
        will: Will | None = None,
        on_link: Callable[[bool], None] | None = None,
        cert_time: Callable[[], float | None] | None = None,
        on_round_trip: Callable[[float], None] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.broker = broker
        self._on_round_trip = on_round_trip  # the SUBSCRIBE round trip, as MqttLink gives
        self._timer = timer
        self._sub_sent = 0.0
        self.client_id = client_id
        self.loop = loop
        self.subscriptions = tuple(subscriptions)
        self.connected = threading.Event()
        self.ready = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.attempts = 0
        self._on_message = on_message
        self._on_link = on_link
        self._closed = False
        self._started = False
        self._connecting = False
        self._deferred: deque[tuple[str, bytes, int, bool]] = deque()
        self._sub_mid: int | None = None
        self._sock: Any = None
        self._hs: Any = None  # the socket being connected / handshaken, not yet paho's
        self._hs_deadline = 0.0
        self._want_write = False
        self._mask = 0
        self._first_delay = loop.policy.first_delay(loop.rng.random)
        self._delays = loop.policy.delays(self._first_delay)
        c = _ReadySocketClient(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._ctx = broker.ssl_context()
        c.tls_set_context(self._ctx)
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        if will is not None:
            set_will(c, will)
        c.on_connect = self._connected_cb
        c.on_disconnect = self._disconnected_cb
        c.on_message = self._message_cb
        c.on_subscribe = self._subscribed_cb
        c.on_socket_open = self._sock_open_cb
        c.on_socket_close = self._sock_close_cb
        c.on_socket_register_write = self._reg_write_cb
        c.on_socket_unregister_write = self._unreg_write_cb
        self._client = c
        loop.links.append(self)

    # -- the MqttLink surface ----------------------------------------------------------------
    def start(self) -> LoopLink:
        if self._started or self._closed:
            return self
        self._started = True
        self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        self._begin_connect()
        return self

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def check_peer_time(self, client: Any = None) -> bool:
        return True  # the simulator's clocks are right; MqttLink checks this on a kiosk

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        if self._connecting:
            self._deferred.append((topic, payload, qos, retain))
            return None
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._connecting:
            return  # the pool's connect sees _closed and closes the socket
        try:
            self._client.disconnect()
            self._flush()
        except Exception:
            log.debug("disconnect of %s failed", self.client_id, exc_info=True)
        self.connected.clear()
        self.ready.clear()

    # -- connecting (pool thread) and reconnecting (loop thread) ---------------------------
    def _begin_connect(self) -> None:
        if self._closed:
            return
        self._connecting = True
        self.attempts += 1
        self.loop.connecting += 1
        self._hs_deadline = time.monotonic() + CONNECT_TIMEOUT
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setblocking(False)
        rc = raw.connect_ex((self.broker.host, self.broker.port))
        if rc not in (0, errno.EINPROGRESS):
            raw.close()
            self._connect_done(OSError(rc, os.strerror(rc)))
            return
        self._hs = raw
        self.loop.sel.register(raw, selectors.EVENT_WRITE, self)

    def _handshake(self) -> None:
        """Drive the TCP connect and the TLS handshake one step (the selector said so)."""
        s = self._hs
        if not isinstance(s, ssl.SSLSocket):
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._handshake_failed(OSError(err, os.strerror(err)))
                return
            self.loop.sel.unregister(s)
            try:
                s = self._ctx.wrap_socket(
                    s, server_hostname=self.broker.host, do_handshake_on_connect=False
                )
            except (OSError, ValueError) as exc:
                self._hs = None
                self._connect_done(exc)
                return
            self._hs = s
            self.loop.sel.register(s, selectors.EVENT_WRITE, self)
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.sel.modify(s, selectors.EVENT_READ, self)
            return
        except ssl.SSLWantWriteError:
            self.loop.sel.modify(s, selectors.EVENT_WRITE, self)
            return
        except (OSError, ValueError) as exc:  # refused, reset, certificate refused
            self._handshake_failed(exc)
            return
        self.loop.sel.unregister(s)
        self._hs = None
        self._client.ready_socket = s
        try:
            self._client.reconnect()  # CONNECT queued; the socket registered as paho's
        except (OSError, ValueError) as exc:
            self._connect_done(exc)
            return
        self._connect_done(None)

    def _handshake_failed(self, err: BaseException) -> None:
        s, self._hs = self._hs, None
        if s is not None:
            try:
                self.loop.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self._connect_done(err)

    def _connect_done(self, err: BaseException | None) -> None:
        self.loop.connecting -= 1
        self._connecting = False
        if self._closed:
            self._client._sock_close()  # paho has no public "drop the socket"
            return
        if err is not None:
            self.loop.connect_failures += 1
            log.debug("connect %s failed: %s", self.client_id, err)
            self._schedule_reconnect()
            return
        while self._deferred:
            topic, payload, qos, retain = self._deferred.popleft()
            self._client.publish(topic, payload, qos=qos, retain=retain)
        self.loop._dirty.add(self)  # the CONNECT (and these) go out on the next flush

    def _schedule_reconnect(self) -> None:
        if not self._closed:
            self.loop.call_later(next(self._delays), self._begin_connect)

    # -- paho socket callbacks ---------------------------------------------------------------
    def _sock_open_cb(self, _c: Any, _u: Any, sock: Any) -> None:
        def register() -> None:
            self._sock = sock
            self._mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._want_write else 0)
            try:
                self.loop.sel.register(sock, self._mask, self)
            except (ValueError, KeyError, OSError):
                self._sock = None  # already closed again

        self._run_on_loop(register)

    def _sock_close_cb(self, _c: Any, _u: Any, sock: Any) -> None:
        def unregister() -> None:
            try:
                self.loop.sel.unregister(sock)
            except (ValueError, KeyError, OSError):
                pass
            if self._sock is sock:
                self._sock = None
                self._mask = 0

        # must run before paho closes the fd: on the loop thread now, else as soon as
        # possible (a selector tolerates a closed fd on unregister by file object)
        self._run_on_loop(unregister)

    def _reg_write_cb(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._want_write = True
        if self.loop.on_loop_thread():
            self.loop._dirty.add(self)
        # else: the pool's connect; _connect_done marks the link for writing

    def _unreg_write_cb(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._want_write = False
        if self.loop.on_loop_thread():
            self.loop._dirty.add(self)

    def _run_on_loop(self, fn: Callable[[], None]) -> None:
        if self.loop.on_loop_thread():
            fn()
        else:
            self.loop.call_soon_threadsafe(fn)

    # -- I/O from the loop -----------------------------------------------------------------
    def _readable(self) -> None:
        if self._hs is not None:
            self._handshake()
            return
        c = self._client
        rc = c.loop_read()
        sock = c.socket()
        while rc == mqtt.MQTT_ERR_SUCCESS and isinstance(sock, ssl.SSLSocket) and sock.pending():
            rc = c.loop_read()  # TLS holds decrypted bytes the selector cannot see
            sock = c.socket()

    def _writable(self) -> None:
        if self._hs is not None:
            self._handshake()
            return
        self._client.loop_write()

    def _flush(self) -> None:
        if self._connecting or self._sock is None:
            return
        if self._want_write:
            self._client.loop_write()
        if self._sock is None:
            return
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._want_write else 0)
        if mask != self._mask:
            self._mask = mask
            try:
                self.loop.sel.modify(self._sock, mask, self)
            except (ValueError, KeyError, OSError):
                pass

    def _misc(self) -> None:
        if self._hs is not None and time.monotonic() > self._hs_deadline:
            self._handshake_failed(TimeoutError("connect and TLS handshake timed out"))
            return
        if not self._connecting and self._sock is not None:
            self._client.loop_misc()

    # -- paho protocol callbacks (loop thread) -----------------------------------------------
    def _connected_cb(self, client: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.debug("broker refused %s: %s", self.client_id, rc)
            return  # paho closes; the disconnect callback schedules the retry
        self.connects += 1
        self._delays = self.loop.policy.delays(self._first_delay)  # paho: reset on CONNACK
        self.connected.set()
        if self.subscriptions:
            self._sub_sent = self._timer()
            _rc, self._sub_mid = client.subscribe([(t, 1) for t in self.subscriptions])
        else:
            self._set_ready()

    def _subscribed_cb(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any = None) -> None:
        if mid == self._sub_mid and not any(getattr(r, "is_failure", False) for r in codes):
            if self._on_round_trip is not None:
                self._on_round_trip(self._timer() - self._sub_sent)
            self._set_ready()

    def _set_ready(self) -> None:
        self.ready.set()
        if self._on_link is not None:
            self._on_link(True)

    def _disconnected_cb(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        was = self.ready.is_set()
        self.connected.clear()
        self.ready.clear()
        self._sub_mid = None
        if was:
            self.disconnects += 1
            if self._on_link is not None:
                self._on_link(False)
        if not self._closed and not self._connecting:
            self._schedule_reconnect()

    def _message_cb(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            self._on_message(msg.topic, msg.payload)
        except Exception:
            log.exception("fleet link %s: message handler failed", self.client_id)
