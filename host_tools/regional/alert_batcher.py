"""Hit alerts on their way to the alert desk: a queue of signed alerts, sent as sealed,
fixed-size batches at a fixed rate (wire format: :mod:`firmware.protocol.alerts`).

The regional service calls :meth:`AlertBatcher.add` for each hit; a timer
calls :meth:`AlertBatcher.flush` every ``alert_interval`` seconds, which publishes one
batch whether or not there were hits, so the broker cannot tell when hits happen. While
the broker is away nothing is sealed and the alerts stay queued. ``provision alert-desk
--rotate`` rewrites the desk key: :meth:`AlertBatcher.reload_desk_key` (polled) seals to
the new key from the next batch on. At shutdown :meth:`AlertBatcher.drain` sends what is
queued at once and says what could not be sent (it is in the audit trail either way).

The batcher never touches MQTT itself: it is given ``publish(topic, payload)`` and
``connected()``, so its tests need no broker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.protocol import alerts, keys, topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Any]


def hit_alert(
    region: str, q: Any, *, now: float, dkh: str, rec: Any, list_version: int | None
) -> dict[str, Any]:
    """The alert body for a hit (:data:`firmware.protocol.alerts.ALERT_FIELDS`): the
    opened query ``q``, the keyed hash ``dkh`` (never the document number) and the record.
    ``late``: the query came as a resend (``q.resend``), an answer to a scan the kiosk had
    already answered offline or shown as UNKNOWN."""
    return {
        "v": 1,
        "region": region,
        "terminal": q.terminal_id,
        "query_id": q.query_id.hex(),
        "dkh": dkh,
        "reference": rec.reference,
        "status": str(rec.status),
        "reporting_country": rec.reporting_country,
        "list_version": list_version,
        "t": round(now, 3),
        "late": bool(getattr(q, "resend", False)),
    }


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, to notice that it was rewritten; None if absent."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st is not None else None


class AlertBatcher:
    """Signed alerts in, sealed batches out (see the module docstring). Thread-safe:
    ``add`` runs in the MQTT thread, ``flush`` and ``reload_desk_key`` in timer threads.

    ``desk_key`` is the desk's X25519 public key file; without one (None) alerts are
    queued and counted but never sent. ``counts`` (shared with the service's health)
    gets ``alerts``, ``alert_batches`` and ``alerts_sent``.
    """

    def __init__(
        self,
        region: str,
        sign_key: Ed25519PrivateKey,
        desk_key: Path | None,
        *,
        publish: Publish,
        connected: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        counts: Counter[str] | None = None,
        src: str | None = None,
    ):
        self.region = region
        self.topic = topics.alert_topic(region)
        self.desk_key = desk_key
        self._sign_key = sign_key
        self._publish = publish
        self._connected = connected
        self._clock = clock
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.src = src if src is not None else os.urandom(8).hex()
        self.desk = keys.load_x25519_public(desk_key) if desk_key else None
        self._desk_stamp = _stamp(desk_key)
        self.queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.seq = 0

    @property
    def enabled(self) -> bool:
        """Whether there is a desk key to seal to."""
        return self.desk is not None

    def add(self, body: dict[str, Any]) -> None:
        """Sign an alert body (see :func:`hit_alert`) and queue it for the next batch."""
        item = alerts.sign_alert(self._sign_key, body)
        with self._lock:
            self.queue.append(item)
        self.counts["alerts"] += 1

    def flush(self) -> Any:
        """Publish one sealed batch (up to MAX_PER_BATCH queued alerts, or none: the
        broker sees the same message either way). Nothing while the broker is away: alerts
        stay queued. Returns the publisher's result (paho's message info), or None. If
        sealing or publishing fails, the alerts go back to the head of the queue."""
        if self.desk is None or not self._connected():
            return None
        with self._lock:
            n = min(len(self.queue), alerts.MAX_PER_BATCH)
            batch = [self.queue.popleft() for _ in range(n)]
        self.seq += 1
        try:
            payload = alerts.seal_batch(
                self.desk, self.region, src=self.src, seq=self.seq, t=self._clock(), alerts=batch
            )
            info = self._publish(self.topic, payload)
        except Exception:
            with self._lock:
                self.queue.extendleft(reversed(batch))
            raise
        self.counts["alert_batches"] += 1
        self.counts["alerts_sent"] += len(batch)
        return info

    def reload_desk_key(self) -> bool:
        """Pick up a rotated alert desk key (``provision alert-desk --rotate`` rewrites
        it); a file that does not load keeps the old key. True if the key changed."""
        stamp = _stamp(self.desk_key)
        if self.desk_key is None or stamp is None or stamp == self._desk_stamp:
            return False
        self._desk_stamp = stamp
        try:
            key = keys.load_x25519_public(self.desk_key)
        except Exception as exc:
            log.error("alert desk key %s not reloaded, keeping the old one: %s", self.desk_key, exc)
            return False
        self.desk = key
        log.warning("regional %s: alert desk key changed: sealing to the new key", self.region)
        return True

    def drain(self, within: float = 5.0) -> int:
        """At shutdown: send what is queued now (off the fixed rate, which no longer
        matters), wait up to ``within`` for the broker to take each batch, and say what
        could not be sent. Returns how many alerts are left unsent."""
        infos = []
        while self.queue and (info := self.flush()) is not None:
            infos.append(info)
        for info in infos:
            try:
                info.wait_for_publish(timeout=within)
            except (ValueError, RuntimeError) as exc:  # paho: link gone meanwhile
                log.warning("an alert batch may not have reached the broker: %s", exc)
        left = len(self.queue)
        if left:
            log.warning(
                "regional %s: %d hit alert(s) not sent to the alert desk (broker away); "
                "they are in the audit trail",
                self.region,
                left,
            )
        return left

    def __len__(self) -> int:
        return len(self.queue)
