"""Shared pieces of the leak and regional attack tests: a local region from the generated
config (real Mosquitto with mTLS and its ACL, real regional processes, real bundles) and a
*broker tap*, which sees what the broker sees.

The broker is the attacker of issue 13 part 2: it sees every message's topic, size and
time, never its content. The tap stands in for it: a client with its own certificate
(an ``observer`` bundle from ``provision add-terminal``) to which the ACL grants read on
the whole region (``topic read ft/v1/<region>/#``), the one line the tests add to the
generated ACL before the broker starts. It records (arrival time, topic, size) of every
message; the tests compute from those records only.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.mrz import parse
from firmware.protocol.dockey import DocumentKey
from host_tools.provision import broker_config as bc
from tests.e2e import rig
from tests.support.localregion import TestRegion

REGION = "central"
OBSERVER = "observer"
WAIT = 30.0  # upper bound of every wait (never a timing assertion)


def wait_for(pred: Callable[[], Any], what: str, limit: float = WAIT) -> Any:
    """Poll ``pred`` (bounded) until truthy; its value (:func:`tests.e2e.rig.wait_for`)."""
    return rig.wait_for(pred, limit, what)


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


def make_region(workdir: Path, terminals: tuple[str, ...], records: int = 2000) -> TestRegion:
    """Provisioned region with an ``observer`` bundle, the tap's ACL line, a synthetic list
    and a running broker (the caller closes it)."""
    region = TestRegion(workdir, terminals=(*terminals, OBSERVER), records=records, seed=11)
    region.provision().generate_list()
    state_file = region.broker_dir / bc.DYNSEC_FILE  # the tap may read the whole region
    state = json.loads(state_file.read_text())
    tap = f"ft/v1/{REGION}/#"
    state["roles"].append({"rolename": "tap", "acls": bc.extra_acls(patterns=[tap])[1:]})
    for c in state["clients"]:
        if c["username"] == OBSERVER:
            c["roles"].append({"rolename": "tap"})
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    region.start_broker()
    return region


@dataclass(frozen=True)
class Seen:
    t: float  # time.monotonic() at arrival on the tap
    topic: str
    size: int


class BrokerTap:
    """Subscribes to everything of the region and records ``Seen`` rows (thread-safe)."""

    def __init__(self, region: TestRegion):
        bundle = region.bundle(OBSERVER)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=OBSERVER, protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(bundle / "ca.crt"))
        ctx.load_cert_chain(str(bundle / "client.crt"), str(bundle / "client.key"))
        self.client.tls_set_context(ctx)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.seen: list[Seen] = []
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"ft/v1/{REGION}/#", qos=1)
        self.port = region.port

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        if msg.retain:  # a retained copy delivered at subscribe time, not a live message
            return
        with self._lock:
            self.seen.append(Seen(now, msg.topic, len(msg.payload)))

    def __enter__(self) -> BrokerTap:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "the tap's SUBACK"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def rows(self, kind: str | None = None, terminal: str | None = None) -> list[Seen]:
        """Rows so far, optionally of ``ft/v1/<region>/<kind>/<terminal>`` only."""
        with self._lock:
            rows = list(self.seen)
        if kind is not None:
            prefix = f"ft/v1/{REGION}/{kind}"
            rows = [r for r in rows if r.topic == prefix or r.topic.startswith(prefix + "/")]
        if terminal is not None:
            rows = [r for r in rows if r.topic.rsplit("/", 1)[-1] == terminal]
        return rows

    def count(self, kind: str, terminal: str | None = None) -> int:
        return len(self.rows(kind, terminal))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank rule."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def threshold_accuracy(features: list[float], labels: list[bool]) -> float:
    """Leave-one-out accuracy of the best one-threshold classifier (either direction) on
    one feature: for each sample, the threshold is fitted on all the others, then the
    sample is classified. 0.5 is chance for balanced labels; a leak gives ~1.0."""
    n = len(features)
    right = 0
    for i in range(n):
        train = [(f, y) for j, (f, y) in enumerate(zip(features, labels, strict=True)) if j != i]
        best = (-1, 0.0, True)
        for cut in sorted({f for f, _ in train}):
            for above in (True, False):
                ok = sum((f >= cut) == (y if above else not y) for f, y in train)
                best = max(best, (ok, cut, above))
        _, cut, above = best
        guess = (features[i] >= cut) if above else (features[i] < cut)
        right += guess == labels[i]
    return right / n
