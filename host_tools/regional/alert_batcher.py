"""Hit alerts on their way to the alert desk: a durable queue of alert bodies in the
regional's audit database, sent as sealed, fixed-size batches at a fixed rate (wire
format: :mod:`firmware.protocol.alerts`).

Durable before the answer (issue 14: a probe lost 31 of 93 alerts to a SIGKILL, because
they queued in memory): the regional service hands a hit's alert body to
:meth:`~host_tools.regional.audit.AuditTrail.record` with its audit row, and the audit
writer inserts it into the ``alert_queue`` table *in the same transaction* as the row
(``synchronous=FULL``), before the answer is published. Each queued alert gets the next
number of the queue's sequence (``aseq``, SQLite ``AUTOINCREMENT``: never reused) within
the queue's ``epoch`` (random, made with the table: a new epoch means the queue was lost
or re-created).

A timer calls :meth:`AlertBatcher.flush` every ``alert_interval`` seconds. It claims the
oldest :data:`~firmware.protocol.alerts.MAX_PER_BATCH` alerts for a lease, signs each body
(with its ``epoch`` and ``aseq``: the signature covers them), seals one batch (empty or
not, so the broker cannot tell when hits happen) carrying the queue's ``low`` (the
smallest ``aseq`` still queued: every alert below it reached the broker) and ``high`` (the
last ``aseq`` handed out), and publishes it. An alert leaves the table only once the broker
acknowledged its batch (PUBACK, seen at the next flush); a process killed in between
leaves it leased, and when the lease runs out any regional process sharing the database
sends it again (the desk drops the copy by ``epoch``/``aseq``). So a restarted regional
drains what its predecessor left, at the same fixed rate. :meth:`AlertBatcher.drain` (at
shutdown) sends what is queued at once; what it cannot send stays for the next start.

``provision alert-desk --rotate`` rewrites the desk key: :meth:`AlertBatcher.reload_desk_key`
(polled) seals to the new key from the next batch on. Without a desk key alerts are
queued (durably) and never sent.

The batcher never touches MQTT itself: it is given ``publish(topic, payload)`` and
``connected()``, so its tests need no broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.protocol import alerts, keys, topics

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Any]

#: The alert queue, in the regional audit database (audit.py writes it with the audit rows).
ALERT_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_queue (
    aseq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the queue's sequence: never reused
    t REAL NOT NULL,                         -- unix time the hit was answered
    body TEXT NOT NULL,                      -- the unsigned alert body (JSON)
    lease REAL NOT NULL DEFAULT 0            -- claimed for a batch until (unix time)
);
CREATE TABLE IF NOT EXISTS alert_epoch (epoch TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerted (     -- one alert per query: a re-sent copy makes none
    terminal TEXT NOT NULL,
    query_id TEXT NOT NULL,
    PRIMARY KEY (terminal, query_id)
) WITHOUT ROWID;
"""


def queue_alert(db: sqlite3.Connection, t: float, body: dict[str, Any]) -> bool:
    """Insert one alert body (inside the caller's transaction: the audit writer's), unless
    this terminal's query already raised one: a kiosk re-sends a pending query after a
    reconnect (several copies, one id) and each copy is answered, but the desk gets one
    alert per hit. Returns whether it was queued."""
    cur = db.execute(
        "INSERT OR IGNORE INTO alerted (terminal, query_id) VALUES (?, ?)",
        (str(body["terminal"]), str(body["query_id"])),
    )
    if cur.rowcount == 0:
        return False
    db.execute("INSERT INTO alert_queue (t, body) VALUES (?, ?)", (t, json.dumps(body)))
    return True


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


class AlertQueue:
    """The ``alert_queue`` table of one audit database (shared by every regional process
    that shares the database). Thread-safe."""

    def __init__(self, path: Path, *, lease: float = 10.0, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.lease = lease
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(ALERT_SCHEMA)
        with self._write() as db:
            row = db.execute("SELECT epoch FROM alert_epoch").fetchone()
            if row is None:
                row = (os.urandom(8).hex(),)
                db.execute("INSERT INTO alert_epoch VALUES (?)", row)
                log.warning("alert queue %s: new epoch %s", self.path.name, row[0])
        self.epoch: str = str(row[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (lock held), rolled back if anything in it fails."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, body: dict[str, Any]) -> None:
        """Queue one body on its own (the service queues through the audit writer)."""
        with self._write() as db:
            queue_alert(db, self._clock(), body)

    def claim(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest ``n`` alerts not leased (or whose lease ran out, or lies beyond a
        clock step back), leased to this caller: ``(aseq, body)``, oldest first."""
        now = self._clock()
        with self._write() as db:
            rows = db.execute(
                "SELECT aseq, body FROM alert_queue WHERE lease <= ? OR lease > ? "
                "ORDER BY aseq LIMIT ?",
                (now, now + self.lease, n),
            ).fetchall()
            db.executemany(
                "UPDATE alert_queue SET lease = ? WHERE aseq = ?",
                [(now + self.lease, r[0]) for r in rows],
            )
        return [(int(a), json.loads(b)) for a, b in rows]

    def delivered(self, seqs: list[int]) -> None:
        """The broker has these alerts: they leave the queue."""
        self._many("DELETE FROM alert_queue WHERE aseq = ?", seqs)

    def release(self, seqs: list[int]) -> None:
        """Not sent after all: free them for the next batch at once."""
        self._many("UPDATE alert_queue SET lease = 0 WHERE aseq = ?", seqs)

    def _many(self, sql: str, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._write() as db:
            db.executemany(sql, [(s,) for s in seqs])

    def bounds(self) -> tuple[int, int]:
        """``(low, high)``: the smallest ``aseq`` still queued (``high + 1`` when empty)
        and the last one handed out (0 before the first)."""
        with self._lock:
            hi = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'alert_queue'"
            ).fetchone()
            lo = self._db.execute("SELECT MIN(aseq) FROM alert_queue").fetchone()
        high = int(hi[0]) if hi else 0
        return (int(lo[0]) if lo and lo[0] is not None else high + 1), high

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM alert_queue").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, to notice that it was rewritten; None if absent."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st is not None else None


def _published(info: Any) -> bool:
    """Whether paho has the broker's PUBACK for a message (test stand-ins: always)."""
    check = getattr(info, "is_published", None)
    return True if check is None else bool(check())


class AlertBatcher:
    """Queued alerts in, sealed batches out (see the module docstring). Thread-safe:
    ``flush`` and ``reload_desk_key`` run in timer threads.

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
        queue: AlertQueue,
        publish: Publish,
        connected: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        counts: Counter[str] | None = None,
        src: str | None = None,
    ):
        self.region = region
        self.topic = topics.alert_topic(region)
        self.desk_key = desk_key
        self.queue = queue
        self._sign_key = sign_key
        self._publish = publish
        self._connected = connected
        self._clock = clock
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.src = src if src is not None else os.urandom(8).hex()
        self.desk = keys.load_x25519_public(desk_key) if desk_key else None
        self._desk_stamp = _stamp(desk_key)
        self._lock = threading.Lock()
        #: Batches published whose PUBACK was not seen yet: (paho info, their aseqs, when).
        self._outstanding: list[tuple[Any, list[int], float]] = []
        self.seq = 0

    @property
    def enabled(self) -> bool:
        """Whether there is a desk key to seal to."""
        return self.desk is not None

    def add(self, body: dict[str, Any]) -> None:
        """Queue an alert body (see :func:`hit_alert`) for a later batch (durably)."""
        self.queue.add(body)
        self.counts["alerts"] += 1

    def settle(self) -> None:
        """Alerts of batches the broker acknowledged leave the queue."""
        now = self._clock()
        with self._lock:
            done = [o for o in self._outstanding if _published(o[0])]
            # past its lease an unacknowledged batch's alerts are claimed again anyway
            self._outstanding = [
                o for o in self._outstanding if o not in done and now - o[2] < self.queue.lease
            ]
        self.queue.delivered([s for _, seqs, _ in done for s in seqs])

    def flush(self) -> Any:
        """Publish one sealed batch (up to MAX_PER_BATCH queued alerts, or none: the
        broker sees the same message either way). Nothing while the broker is away: alerts
        stay queued. Returns the publisher's result (paho's message info), or None. If
        sealing or publishing fails, the alerts are released for the next batch."""
        if self.desk is None or not self._connected():
            return None
        self.settle()
        claimed = self.queue.claim(alerts.MAX_PER_BATCH)
        seqs = [a for a, _ in claimed]
        self.seq += 1
        try:
            epoch = self.queue.epoch
            items = [
                alerts.sign_alert(self._sign_key, {**body, "epoch": epoch, "aseq": aseq})
                for aseq, body in claimed
            ]
            low, high = self.queue.bounds()
            payload = alerts.seal_batch(
                self.desk, self.region, src=self.src, seq=self.seq, t=self._clock(),
                alerts=items, epoch=epoch, low=low, high=high,
            )  # fmt: skip
            info = self._publish(self.topic, payload)
        except Exception:
            self.queue.release(seqs)
            raise
        with self._lock:
            self._outstanding.append((info, seqs, self._clock()))
        self.counts["alert_batches"] += 1
        self.counts["alerts_sent"] += len(seqs)
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
        is left: it stays queued (durably) for the next start. Returns how many."""
        rounds = len(self.queue) // alerts.MAX_PER_BATCH + 1
        for _ in range(rounds):
            if not len(self.queue) or self.flush() is None:
                break
        with self._lock:
            waiting = list(self._outstanding)
        for info, _, _ in waiting:
            try:
                info.wait_for_publish(timeout=within)
            except (ValueError, RuntimeError) as exc:  # paho: link gone meanwhile
                log.warning("an alert batch may not have reached the broker: %s", exc)
        self.settle()
        left = len(self.queue)
        if left:
            log.warning(
                "regional %s: %d hit alert(s) not yet sent to the alert desk: they stay "
                "queued in %s and go out after the next start",
                self.region,
                left,
                self.queue.path.name,
            )
        return left

    def __len__(self) -> int:
        return len(self.queue)
