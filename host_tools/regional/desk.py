"""``fieldterm alerts``: the alert desk's reader of sealed hit alerts.

Subscribes to ``ft/v1/<region>/alert`` with the desk's TLS identity, opens each sealed batch
with the desk's X25519 key, checks every alert's regional signature and prints it. Batches
arrive at a fixed rate whether or not there were hits (that is what hides hits from the
broker), so most are empty and print nothing; the first batch from each regional process
is reported on stderr, so a quiet desk knows it is listening. A gap in the batch sequence is reported:
alerts in a batch the desk never received are lost to the desk (they stay in the regional
audit trail). A batch seen before (a redelivery, or a replay by the broker) is ignored, so
no alert is shown twice.

Alerts are numbered (issue 14): each carries its regional alert queue's ``epoch`` and its
number ``aseq`` there, and each batch the queue's ``low`` (every alert below it was handed
to the broker) and ``high`` (the last number given out). The desk reports, as an error
naming them, alerts below ``low`` it never received, and when a new epoch replaces the one
it knew (the regional's queue was lost or re-created) it raises an ALARM with the alerts of
the old epoch it knew of and never got. An alert seen before (the same epoch and number,
sent again after a regional restart) is not shown twice. ``missing_alerts`` and the last
gap messages are in the health file.

Since batches come every ``alert_interval`` seconds (desk.toml, the regional's rate), a
desk that hears none for :data:`MISSED_INTERVALS` intervals raises an alarm: an error on
stderr, and ``"alarm"`` in its health file (``--health-file``). Silence is never taken
for "no hits": a broker, link or regional failure looks exactly like it.

    fieldterm alerts --config desk.toml                 # until Ctrl-C
    fieldterm alerts --config desk.toml --count 1 --timeout 60 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from firmware.config import ConfigDoc
from firmware.errors import EnvelopeError
from firmware.protocol import alerts, keys, topics
from firmware.transport.mqtt import BrokerConfig, MqttLink

log = logging.getLogger(__name__)

#: Seconds the broker keeps the desk's session (and the alert batches queued in it).
DESK_SESSION_EXPIRY = 3600

#: Batches missed in a row (at the configured interval) before the desk raises an alarm.
MISSED_INTERVALS = 3
#: Alerts remembered (epoch, aseq) so that one sent twice is shown once.
SEEN_ALERTS = 100_000
#: Gap messages kept for the health file.
GAP_MESSAGES = 20


@dataclass
class EpochTrack:
    """What the desk knows of one regional alert queue (epoch): every ``aseq`` up to
    ``floor`` is accounted for (received, or reported missing); ``got`` holds those above
    it that arrived; ``high`` is the last number the queue reported handing out."""

    floor: int
    high: int
    got: set[int] = field(default_factory=set)

    def unseen(self) -> int:
        """Alerts the queue gave numbers to that this desk has not received."""
        return max(0, self.high - self.floor - len([s for s in self.got if s <= self.high]))


def _ranges(seqs: list[int], limit: int = 5) -> str:
    shown = ", ".join(f"#{s}" for s in seqs[:limit])
    return shown + (f" and {len(seqs) - limit} more" if len(seqs) > limit else "")


@dataclass(frozen=True)
class DeskConfig:
    region: str
    alert_key: Path
    sign_public: Path
    broker: BrokerConfig
    #: The regional's batch interval (regional.toml ``alert_interval``), seconds.
    alert_interval: float = 2.0

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeskConfig:
        doc = ConfigDoc.load(path)
        sec = doc.section("desk")
        cfg = cls(
            region=topics.validate_id("desk.region", sec.text("region")),
            alert_key=sec.path("alert_key", "alert-desk.key"),
            sign_public=sec.path("sign_public", "regional-sign.pub"),
            broker=BrokerConfig.from_section(doc.section("broker")),
            alert_interval=sec.number("alert_interval", 2.0, lo=0.1, hi=3600.0),
        )
        doc.check_unknown()
        return cfg


def describe(body: dict[str, Any]) -> str:
    """One line a desk officer reads: when, where, what the list says."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(body["t"])))
    return (
        f"{when} {'LATE ' if body.get('late') is True else ''}POSSIBLE MATCH "
        f"at {body['terminal']}: {body['status']} "
        f"(reported by {body['reporting_country']}, reference {body['reference']}, "
        f"list {body['list_version']}) query {body['query_id']} dkh {body['dkh']}"
    )


class Desk:
    """Opens batches as they arrive; ``received`` counts verified alerts."""

    def __init__(
        self,
        cfg: DeskConfig,
        out: TextIO,
        *,
        as_json: bool = False,
        clock: Any = time.monotonic,
    ):
        self.cfg = cfg
        self.clock = clock
        self.last_batch_at = clock()  # a desk that never hears a batch alarms too
        self.alarm = False
        self.out = out
        self.as_json = as_json
        self._key = keys.load_x25519_private(cfg.alert_key)
        self._sign = keys.load_ed25519_public(cfg.sign_public)
        self.received = 0
        self.batches = 0
        self.refused = 0
        self.missed = 0
        self.duplicates = 0
        self.last_seq: dict[str, int] = {}  # per regional process (src)
        self.missing_alerts = 0  # alerts the desk knows it never received
        self.epochs: dict[str, EpochTrack] = {}
        self.epoch: str | None = None  # the regional alert queue heard last
        self.gaps: list[str] = []  # the last gap messages (health)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._lock = threading.Lock()

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            batch = alerts.open_batch(self._key, self.cfg.region, payload)
        except EnvelopeError as exc:
            self.refused += 1
            log.error("alert batch on %s refused (%s): %s", topic, exc.reason, exc)
            return
        with self._lock:
            last = self.last_seq.get(batch.src)
            if last is not None and batch.seq <= last:
                # a QoS 1 redelivery, or a broker replaying an old batch: never show an
                # alert twice (a restarted regional process has a new src)
                self.duplicates += 1
                log.warning("alert batch %d of %s seen before: ignored", batch.seq, batch.src)
                return
            self.batches += 1
            self.last_batch_at = self.clock()
            if self.alarm:
                self.alarm = False
                log.warning("alert batches arrive again (batch %d of %s)", batch.seq, batch.src)
            if last is None:  # a desk that prints nothing must be told it does hear the region
                log.warning(
                    "receiving alert batches from regional process %s (batch %d); "
                    "each hit is printed as it comes",
                    batch.src,
                    batch.seq,
                )
            elif batch.seq > last + 1:
                gap = batch.seq - last - 1
                self.missed += gap
                log.error(
                    "missed %d alert batch(es) %d..%d of regional process %s: any alerts in "
                    "them did not reach this desk; check the regional audit trail",
                    gap,
                    last + 1,
                    batch.seq - 1,
                    batch.src,
                )
            self.last_seq[batch.src] = batch.seq
            track = self._epoch(batch)
            for item in batch.alerts:
                try:
                    body = alerts.verify_alert(self._sign, item, self.cfg.region)
                except EnvelopeError as exc:
                    self.refused += 1
                    log.error("alert in batch %d refused (%s): %s", batch.seq, exc.reason, exc)
                    continue
                if not self._first_time(body, track):
                    self.duplicates += 1
                    continue
                self.received += 1
                line = json.dumps(body, sort_keys=True) if self.as_json else describe(body)
                self.out.write(line + "\n")
                self.out.flush()
            if track is not None:
                self._check_gap(batch, track)

    # -- the alert sequence (lock held) -----------------------------------------------------
    def _gap(self, text: str, *, alarm: bool = False) -> None:
        log.error("%s%s", "ALARM: " if alarm else "", text)
        self.gaps = [*self.gaps, text][-GAP_MESSAGES:]

    def _epoch(self, batch: alerts.Batch) -> EpochTrack | None:
        """The track of the batch's alert queue; a new epoch after another one is a queue
        that was lost or re-created: alarm, with what the old one still owed this desk."""
        if batch.epoch is None or batch.low is None or batch.high is None:
            return None  # an older regional: batch gaps only
        track = self.epochs.get(batch.epoch)
        if track is None:
            old = self.epochs.get(self.epoch) if self.epoch is not None else None
            if old is not None:
                owed = old.unseen()
                self.missing_alerts += owed
                self._gap(
                    f"the regional's alert queue restarted (epoch {self.epoch} -> "
                    f"{batch.epoch}): {owed} alert(s) of the old queue (up to #{old.high}) "
                    "never reached this desk, and any queued after its last batch are lost; "
                    "check the regional audit trail for POSSIBLE_MATCH rows",
                    alarm=True,
                )
                track = EpochTrack(floor=0, high=0)  # this desk heard the queue from its start
            else:
                track = EpochTrack(floor=batch.low - 1, high=batch.low - 1)  # listening since now
            self.epochs[batch.epoch] = track
        self.epoch = batch.epoch
        return track

    def _first_time(self, body: dict[str, Any], track: EpochTrack | None) -> bool:
        """Remember a numbered alert; False if it was shown already."""
        aseq, epoch = body.get("aseq"), body.get("epoch")
        if not isinstance(aseq, int) or not isinstance(epoch, str):
            return True
        key = (epoch, aseq)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_ALERTS:
            self._seen.popitem(last=False)
        if track is not None and epoch == self.epoch and aseq > track.floor:
            track.got.add(aseq)
        return True

    def _check_gap(self, batch: alerts.Batch, track: EpochTrack) -> None:
        """Alerts below the batch's ``low`` reached the broker: those never received here
        are lost to this desk, named by number."""
        assert batch.low is not None and batch.high is not None
        track.high = max(track.high, batch.high)
        if batch.low - 1 <= track.floor:
            return
        got = {s for s in track.got if s < batch.low}
        count = batch.low - 1 - track.floor - len(got)
        lost: list[int] = []  # the first few, by number (the range may be long)
        for s in range(track.floor + 1, batch.low):
            if len(lost) >= 5:
                break
            if s not in got:
                lost.append(s)
        track.floor = batch.low - 1
        track.got -= got
        if count:
            self.missing_alerts += count
            more = f" and {count - len(lost)} more" if count > len(lost) else ""
            self._gap(
                f"missed {count} hit alert(s) {_ranges(lost)}{more} of alert queue "
                f"{batch.epoch}: sent by the regional, never received here; check the "
                "regional audit trail"
            )

    def check_silence(self) -> bool:
        """Raise the alarm (once, on stderr) after :data:`MISSED_INTERVALS` intervals
        without a batch; True while it is raised."""
        with self._lock:
            silent = self.clock() - self.last_batch_at
            limit = MISSED_INTERVALS * self.cfg.alert_interval
            if silent >= limit and not self.alarm:
                self.alarm = True
                log.error(
                    "ALARM: no alert batch for %.0f s (%d intervals of %g s): hit alerts are "
                    "not reaching this desk; check the broker, this desk's link and the "
                    "regional service",
                    silent,
                    MISSED_INTERVALS,
                    self.cfg.alert_interval,
                )
            return self.alarm

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "alarm": self.alarm,
                "seconds_since_batch": round(self.clock() - self.last_batch_at, 1),
                "alert_interval": self.cfg.alert_interval,
                "batches": self.batches,
                "received": self.received,
                "refused": self.refused,
                "missed": self.missed,
                "duplicates": self.duplicates,
                "missing_alerts": self.missing_alerts,
                "alert_epoch": self.epoch,
                "gaps": list(self.gaps),
            }


def _write_health(path: Path | None, desk: Desk) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**desk.health(), "t": time.time()}) + "\n")
    tmp.replace(path)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="alert desk: read the sealed hit alerts of a region",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", required=True, metavar="FILE", help="desk.toml from 'provision alert-desk'"
    )
    p.add_argument("--count", type=int, metavar="N", help="exit 0 after N alerts")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="give up after S seconds (exit 1 if --count alerts did not come)",
    )
    p.add_argument("--json", action="store_true", help="one JSON alert body per line")
    p.add_argument(
        "--health-file",
        type=Path,
        metavar="FILE",
        help="keep FILE current (JSON): alarm, seconds since the last batch, counters",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = DeskConfig.load(args.config)
    desk = Desk(cfg, sys.stdout, as_json=args.json)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    link = MqttLink(
        cfg.broker,
        f"alert-desk-{os.uname().nodename}-{os.getpid()}",
        on_message=desk.on_message,
        subscriptions=(topics.alert_topic(cfg.region),),
        # a batch the broker accepted while this desk's link was down (or just before the
        # broker restarted) is kept in the session and delivered at the reconnect
        session_expiry=DESK_SESSION_EXPIRY,
    ).start()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        if not link.wait_connected(min(30.0, args.timeout or 30.0)):
            log.error(
                "no connection to the broker at %s:%d: check desk.toml [broker] and that the "
                "broker's ACL has the alert-desk user (provision broker-config)",
                cfg.broker.host,
                cfg.broker.port,
            )
            return 1
        next_health = 0.0
        while not stop.is_set():
            desk.check_silence()
            if time.monotonic() >= next_health:
                _write_health(args.health_file, desk)
                next_health = time.monotonic() + 1.0
            if args.count is not None and desk.received >= args.count:
                return 0
            if deadline is not None and time.monotonic() > deadline:
                log.error(
                    "%d alert(s) after %.0f s (%d batches, %d refused, %d missed)",
                    desk.received,
                    args.timeout,
                    desk.batches,
                    desk.refused,
                    desk.missed,
                )
                return 1 if args.count is not None else 0
            stop.wait(0.1)
        return 0
    finally:
        link.close()
