"""The kiosk's lane publisher: one sealed lane frame every 2 s on
``ft/v1/<region>/lane/<site>/<terminal>``, whatever the lane's state, and the panels'
acknowledgements from ``ft/v1/<region>/lane-ack/<site>/+``.

The frame goes out on a fixed schedule (never *because* something happened) and always
has the same size, so the broker cannot tell a call from a quiet lane. A call gets a
random 32-bit call id; a panel's ack counts only if it names the current call. Acks that
do not open under the site key, name another panel than their topic, or carry an old
counter are refused and counted by reason. The site key ring comes from ``keys()`` for
every frame (the agent and the standalone publisher pass :meth:`KeyFile.current`), so a
new ``lane.key`` copied onto the kiosk during a site key rotation takes effect within one
interval, without a restart.

Over an existing :class:`~firmware.transport.mqtt.MqttLink` (the agent's) or standalone,
for tests and the demo::

    python -m firmware.lane.publisher --config terminal.toml   # stdin: call, idle, oos
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.config import ConfigDoc
from firmware.protocol import topics

from . import frames
from .keyring import KeyFile, KeyRing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaneConfig:
    """``[lane]`` of terminal.toml (written by provisioning for a kiosk with a site)."""

    site: str
    key: Path
    interval: float = 2.0


def read_lane_section(doc: ConfigDoc) -> LaneConfig | None:
    """``[lane]`` of ``doc``, or None when the kiosk has no site (no annunciator)."""
    if "lane" not in doc.data:
        return None
    sec = doc.section("lane")
    cfg = LaneConfig(
        site=topics.validate_id("lane.site", sec.text("site")),
        key=sec.path("key", "lane.key"),
        interval=sec.number("interval", 2.0, lo=0.5, hi=10.0),
    )
    sec.check_unknown()
    return cfg


class LanePublisher:
    """Publishes this kiosk's lane frames; ``state()`` gives frames.IDLE, CALL or
    OUT_OF_SERVICE each time (CALL becomes ACKED once a panel acknowledged the call)."""

    def __init__(
        self,
        link: Any,
        *,
        region: str,
        site: str,
        terminal: str,
        keys: Callable[[], KeyRing],
        state: Callable[[], int],
        interval: float = 2.0,
        on_ack: Callable[[str], None] | None = None,
        wall: Callable[[], float] = time.time,
        call_key: Callable[[], Any] = lambda: None,
    ):
        """``call_key()`` names the call while ``state()`` is CALL (the agent: the scan
        number), so a new possible match right after another is a new call."""
        self.link = link
        self.topic = topics.lane_topic(region, site, terminal)
        self.ack_filter = topics.lane_ack_filter(region, site)
        self.ack_prefix = self.ack_filter[:-1]
        self.terminal = terminal
        self.keys = keys
        self.state = state
        self.interval = interval
        self.on_ack = on_ack
        self.wall = wall
        self.call_key = call_key
        self._key: Any = None
        self.ring: KeyRing | None = None  # the ring the last frame was sealed under
        self.call = 0
        self.acked_by: str | None = None
        self.counter = 0
        self.published = 0
        self.refused: dict[str, int] = {}
        self.acks = 0
        self._acks = frames.AckCounter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- frames ----------------------------------------------------------------------------
    def next_frame(self) -> bytes:
        """The frame for now: the lane's state, its call id and a rising counter."""
        base = self.state()
        ring = self.keys()
        with self._lock:
            self.ring = ring
            if base == frames.CALL:
                key = self.call_key()
                if self.call == 0 or key != self._key:
                    self._key = key
                    self.call = int.from_bytes(os.urandom(4), "big") or 1
                    self.acked_by = None
                shown = frames.ACKED if self.acked_by else frames.CALL
            else:
                self.call, self.acked_by, shown = 0, None, base
            self.counter = max(self.counter + 1, int(self.wall() * 1000))
            return frames.seal_lane(ring.send, self.counter, self.terminal, shown, self.call)

    def on_ack_message(self, topic: str, payload: bytes) -> None:
        """A panel's ack frame (network thread)."""
        panel = topic[len(self.ack_prefix) :] if topic.startswith(self.ack_prefix) else ""
        try:
            opened = frames.open_frame(self.keys(), payload, frames.KIND_ACK)
            if opened.sender != panel:
                raise frames.FrameError("sender", f"{opened.sender!r} on {panel!r}'s topic")
            calls = frames.parse_ack_body(opened.body)
        except frames.FrameError as exc:
            self._refuse(str(exc.reason))
            return
        if not self._acks.accept(panel, opened.counter):
            self._refuse("counter")
            return
        with self._lock:
            fresh = self.call != 0 and self.call in calls and self.acked_by is None
            if fresh:
                self.acked_by = panel
                self.acks += 1
        if fresh:
            log.info("lane: call acknowledged by panel %s", panel)
            if self.on_ack is not None:
                self.on_ack(panel)

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.warning("lane: ack frame refused: %s", reason)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> LanePublisher:
        self.link.add_subscription(self.ack_filter, self.on_ack_message)
        self._thread = threading.Thread(target=self._run, name="lane", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.link.publish(self.topic, self.next_frame(), qos=0)
                self.published += 1
            except Exception:
                log.exception("lane: publish failed")
            due += self.interval
            now = time.monotonic()
            if due < now:  # fell behind: keep the rate, skip the missed slots
                due = now + self.interval
            self._stop.wait(due - now)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Standalone publisher: stdin lines ``call``, ``idle``, ``oos`` set the lane state,
    ``stats`` prints counters and the key ring in use; prints ``ready``, then
    ``ack <panel>`` for each acknowledged call."""
    from firmware.transport.mqtt import BrokerConfig, MqttLink  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m firmware.lane.publisher")
    p.add_argument("--config", required=True, type=Path, help="the kiosk's terminal.toml")
    args = p.parse_args(argv)
    doc = ConfigDoc.load(args.config)
    term = doc.section("terminal")
    tid, region = term.text("id"), term.text("region")
    lane = read_lane_section(doc)
    if lane is None:
        print(f"{args.config}: no [lane] section (the kiosk has no site)", file=sys.stderr)
        return 2
    keys = KeyFile(lane.key)
    current = [frames.IDLE]
    link = MqttLink(
        BrokerConfig.from_section(doc.section("broker")),
        f"{tid}-lane",
        on_message=lambda t, m: None,
    )
    pub = LanePublisher(
        link,
        region=region,
        site=lane.site,
        terminal=tid,
        keys=keys.current,
        state=lambda: current[0],
        interval=lane.interval,
        on_ack=lambda panel: print(f"ack {panel}", flush=True),
    )
    link.start()
    if not link.wait_connected(30):
        print("broker not reached in 30 s", file=sys.stderr)
        return 1
    pub.start()
    print("ready", flush=True)
    names = {"call": frames.CALL, "idle": frames.IDLE, "oos": frames.OUT_OF_SERVICE}
    try:
        for line in sys.stdin:
            word = line.strip()
            if word in names:
                current[0] = names[word]
                print(f"state {word}", flush=True)
            elif word == "stats":
                ring = pub.ring.describe() if pub.ring else "-"
                print(
                    f"stats published={pub.published} acks={pub.acks} refused={pub.refused} "
                    f"keys {ring}",
                    flush=True,
                )
    finally:
        pub.close()
        link.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
