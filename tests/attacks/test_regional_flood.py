"""Attack (issue 13 part 5): a flood of junk queries from one kiosk's certificate delays
everyone else's. Every junk ticket cost the regional an HPKE open on the one thread that
serves all terminals; 60 000 of them made 3 of 20 honest queries time out.

End to end: real Mosquitto from the generated config, a real regional process, real
bundles. The attacker holds kiosk-666's certificate and publishes junk envelopes (each
with a different random ticket) to its own query topic as fast as it can, while the
honest kiosk-001 sends 20 queries with its configured timeout. The honest kiosk gets 20
of 20 answers, correct; the regional's refusal counters name the reasons (``ticket`` for
the junk it opened, ``rate_limited`` for what it refused unopened), and the same junk
ticket again is refused from the negative cache under its first reason.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from firmware.client.client import QueryClient
from firmware.client.config import ClientConfig
from firmware.protocol import topics
from tests.attacks.leak_support import REGION, dk_of, make_region, percentile, wait_for
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.timeout(600)
HONEST, HOSTILE, OTHER = "kiosk-001", "kiosk-666", "kiosk-002"
JUNK = int(os.environ.get("FIELDTERM_FLOOD_JUNK", "60000"))


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    r = make_region(tmp_path_factory.mktemp("flood"), (HONEST, HOSTILE, OTHER))
    try:
        yield r
    finally:
        r.close()


def junk(ticket: bytes) -> bytes:
    """A query envelope of the right shape and size whose ticket is random bytes."""
    return b"\x01\x51" + len(ticket).to_bytes(2, "big") + ticket + os.urandom(12 + 16 + 56)


class Flooder:
    """kiosk-666's certificate, publishing ``n`` junk queries (QoS 0, no waiting)."""

    def __init__(self, region: TestRegion, n: int, tid: str = HOSTILE):
        bundle = region.bundle(tid)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=tid, protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(bundle / "ca.crt"))
        ctx.load_cert_chain(str(bundle / "client.crt"), str(bundle / "client.key"))
        self.client.tls_set_context(ctx)
        self.client.max_queued_messages_set(0)
        self.n, self.port, self.sent = n, region.port, 0
        self.topic = topics.query_topic(REGION, tid)
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.thread = threading.Thread(target=self._run, name="flooder", daemon=True)

    def _run(self) -> None:
        for _ in range(self.n):
            self.client.publish(self.topic, junk(os.urandom(187)), qos=0)
            self.sent += 1

    def __enter__(self) -> Flooder:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(30), "the flooder's CONNACK"
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=300)
        self.client.disconnect()
        self.client.loop_stop()


def refusals(health: dict) -> dict[str, int]:
    return dict(health.get("refusals", {}))


def test_a_flood_from_one_certificate_does_not_cost_an_honest_kiosk(region):
    region.start_regional()
    proc = region.regional
    cfg = ClientConfig.load(region.terminal_toml(HONEST))
    docs = [*region.listed[:10], *region.unlisted[:10]]
    expected = ["POSSIBLE_MATCH"] * 10 + ["NO_MATCH"] * 10
    with QueryClient(cfg) as qc:
        assert qc.wait_connected(30)
        with Flooder(region, JUNK) as flood:
            wait_for(lambda: refusals(proc.health()).get("rate_limited"), "the flood arriving")
            verdicts = []
            for lines in docs:  # one traveller after another, during the flood
                verdicts.append(qc.query(dk_of(lines)))  # the kiosk's own 2 s timeout
    outcomes = [v.outcome for v in verdicts]
    answered = sum(o != "TIMEOUT" for o in outcomes)
    h = wait_for(
        lambda: (hh := proc.health()) and sum(refusals(hh).values()) >= 0.5 * JUNK and hh,
        "the regional through most of the flood",
        120,
    )
    lat = [v.latency_s * 1000 for v in verdicts if v.outcome != "TIMEOUT"]
    print(
        "\nflood:",
        json.dumps(
            {
                "junk_sent": flood.sent,
                "honest_answered": f"{answered} of {len(docs)}",
                "honest_p50_ms": round(percentile(lat, 0.5), 1) if lat else None,
                "honest_max_ms": round(max(lat), 1) if lat else None,
                "refusals": refusals(h),
                "bad_tickets_cached": h.get("bad_tickets_cached"),
            }
        ),
    )
    assert outcomes == expected, outcomes  # 20 of 20 answered, correctly
    r = refusals(h)
    assert r.get("ticket", 0) >= 1 and r.get("rate_limited", 0) > r.get("ticket", 0)
    assert set(r) <= {"ticket", "rate_limited"}, r  # nothing of the honest kiosk refused


def test_the_same_bad_ticket_again_is_refused_from_the_negative_cache(region):
    """One junk ticket, twice, from a certificate with its refusal budget intact: opened
    and refused (``ticket``) once, then refused from the cache (``bad_ticket_hits``)."""
    proc = region.regional
    with Flooder(region, 0, tid=OTHER) as flood:
        before = proc.health()
        payload = junk(b"\x07" * 187)
        flood.client.publish(flood.topic, payload, qos=1).wait_for_publish(10)
        h1 = wait_for(
            lambda: (
                (hh := proc.health())["counts"].get("refused", 0)
                > before["counts"].get("refused", 0)
                and hh
            ),
            "the first refusal",
        )
        flood.client.publish(flood.topic, payload, qos=1).wait_for_publish(10)
        h2 = wait_for(
            lambda: (hh := proc.health())["counts"]["refused"] > h1["counts"]["refused"] and hh,
            "the second refusal",
        )
    assert h2.get("bad_ticket_hits", 0) == h1.get("bad_ticket_hits", 0) + 1
    assert refusals(h2)["ticket"] == refusals(h1)["ticket"] + 1  # counted under its reason
