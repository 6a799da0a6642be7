"""The panel's MQTT link: micropython-lib's umqtt.robust over TLS with the panel's client
certificate, verifying the broker against the region's CA (``server_hostname`` set, as
``CERT_REQUIRED`` needs). Reconnects use exponential backoff with jitter, and keep the
panel's lights running while they wait; after every reconnect the lane topics are
subscribed again (a restarted broker may have lost the session).
"""

import os
import ssl

import utime as time
from umqtt import robust, simple


def ssl_params(cfg, read):
    """``ssl_params`` for umqtt: DER key, certificate and CA, from the provisioned files."""
    return {
        "key": read(cfg["key"]),
        "cert": read(cfg["cert"]),
        "cadata": read(cfg["ca"]),
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": cfg.get("server_hostname", cfg["host"]),
    }


def backoff_ms(attempt, lo, hi):
    """Exponential backoff from ``lo`` to ``hi`` with jitter: uniform in [d/2, d]."""
    d = min(hi, lo << min(attempt, 16))
    r = int.from_bytes(os.urandom(2), "big") / 65535
    return int(d / 2 + r * d / 2)


class PanelClient(robust.MQTTClient):
    """umqtt.robust with our backoff (its ``delay`` hook) and resubscription."""

    def __init__(self, cfg, read, on_message, idle, log=print):
        super().__init__(
            cfg["client_id"],
            cfg["host"],
            port=cfg["port"],
            keepalive=cfg.get("keepalive", 30),
            ssl=True,
            ssl_params=ssl_params(cfg, read),
        )
        self.topics = [ln["topic"] for ln in cfg["lanes"]]
        self.lo = cfg.get("backoff_min_ms", 500)
        self.hi = cfg.get("backoff_max_ms", 8000)
        self.idle = idle  # idle(ms): run the panel for ms while we wait
        self.log_line = log
        self.connects = 0
        self.set_callback(on_message)

    def log(self, in_reconnect, e):
        self.log_line(f"mqtt {'reconnect' if in_reconnect else 'error'} {e!r}")

    def delay(self, i):
        self.idle(backoff_ms(i, self.lo, self.hi))

    def start(self):
        """First connection, retried with backoff until the broker takes us."""
        i = 0
        while True:
            try:
                self._close()
                self.connect(True)
                break
            except Exception as e:  # OSError, TLS and MQTT refusals alike
                self.log(True, e)
                i += 1
                self.delay(i)
        self._subscribed()

    def reconnect(self):
        """umqtt.robust's loop (OSError) plus any other failure of a half-open link."""
        i = 0
        while True:
            try:
                self._close()
                super().reconnect()
                break
            except Exception as e:
                self.log(True, e)
                i += 1
                self.delay(i)
        self._subscribed()

    def _close(self):
        sock, self.sock = self.sock, None  # type: ignore[has-type]
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _subscribed(self):
        for t in self.topics:
            self.subscribe(t)
        self.connects += 1
        self.log_line(f"mqtt connected {self.connects}")

    def wait_msg(self):
        """One message, without umqtt.robust's retry loop: after its reconnect that loop
        would block on the fresh socket; :meth:`poll` reconnects instead."""
        return simple.MQTTClient.wait_msg(self)

    def poll(self):
        """Handle one message if the broker sent one, without blocking (umqtt returns None
        both for "nothing there" and after a PUBLISH, so one per call: the loop calls
        again every 20 ms); a dead link reconnects."""
        try:
            self.check_msg()
        except Exception as e:
            self.log(False, e)
            self.reconnect()

    def send(self, topic, msg):
        try:
            simple.MQTTClient.publish(self, topic, msg)
        except Exception as e:
            self.log(False, e)
            self.reconnect()


def sleep_ms(ms):
    time.sleep_ms(ms)
