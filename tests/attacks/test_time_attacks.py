"""Attacks on the time path, end to end: a real Mosquitto from the generated mTLS config,
the real regional process, the kiosk's real query client and bundle (in this process, so
the test can see what it sent and re-inject it, as a broker that records traffic can).

- A replayed query is still refused after the kiosk adopted the regional's time.
- A replayed out-of-window query gets no second time hint.
- A time hint not signed by the pinned regional key moves no clock.
- Once time is authenticated, a broker certificate outside its validity closes the link.

Each test also shows that honest traffic is still answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.client.client import QueryClient
from firmware.client.config import ClientConfig
from firmware.mrz import parse
from firmware.protocol import keys, topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.session import OutOfWindow, RegionalSessions
from tests.regional.conftest import WAIT, wait_for
from tests.support.localregion import TestRegion

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TID = "kiosk-001"
DAY = 86400.0


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    with TestRegion(
        tmp_path_factory.mktemp("time-attacks"), terminals=(TID,), records=2000, seed=17,
        sample_size=4,
    ) as r:  # fmt: skip
        r.provision().generate_list()
        r.start_broker()
        r.start_regional()
        yield r


def dk_of(lines: list[str]) -> DocumentKey:
    return DocumentKey.from_mrz(parse(lines))


def health(region: TestRegion) -> dict[str, Any]:
    return region.health(region.procs[0][1])


def counted(region: TestRegion, section: str, key: str, more_than: int) -> dict[str, Any]:
    return wait_for(
        lambda: (h := health(region)).get(section, {}).get(key, 0) > more_than and h,
        f"health {section}.{key} above {more_than}",
    )


class RecordingClient:
    """The kiosk's query client with a wrong clock; every payload it publishes is kept."""

    def __init__(self, region: TestRegion, skew: float):
        self.qc = QueryClient(
            ClientConfig.load(region.terminal_toml(TID)), clock=lambda: time.time() + skew
        )
        self.sent: list[bytes] = []
        self._publish = self.qc.link.publish
        self.qc.link.publish = self._record  # type: ignore[method-assign]

    def _record(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        if topic.startswith(topics.query_topic("central", TID)):
            self.sent.append(payload)
        return self._publish(topic, payload, qos=qos, retain=retain)

    def inject(self, payload: bytes) -> None:
        """Publish ``payload`` again on the kiosk's query topic, unrecorded (the replay)."""
        self._publish(topics.query_topic("central", TID), payload, qos=1)

    def __enter__(self) -> RecordingClient:
        self.qc.start()
        assert self.qc.wait_connected(WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.qc.close()


def test_replay_is_still_refused_after_the_kiosk_adopted_the_regional_time(region):
    with RecordingClient(region, -DAY) as k:
        v = k.qc.query(dk_of(region.unlisted[0]), timeout=10.0)
        assert v.outcome == "NO_MATCH"
        assert (k.qc.counts["time_hints"], k.qc.counts["resealed"]) == (1, 1)
        assert k.qc.clock_offset == pytest.approx(DAY, abs=5.0)
        stale, corrected = k.sent  # the first copy was told the time, the second answered
        h0 = wait_for(  # the health file catches up with that answer first
            lambda: (h := health(region)).get("answered", 0) >= 1 and h, "the answer in health"
        )
        answered, replays = h0["answered"], h0["refusals"].get("replay", 0)
        hinted = h0["counts"].get("time_hints_replayed", 0)
        # the corrected query, replayed inside the window: refused as a replay, unanswered
        k.inject(corrected)
        h = counted(region, "refusals", "replay", replays)
        assert h["answered"] == answered
        # the out-of-window original, replayed: refused again and no second hint
        k.inject(stale)
        h = counted(region, "counts", "time_hints_replayed", hinted)
        assert h["clock"]["hints"] == h0["clock"]["hints"]
        assert h["answered"] == answered
        # honest traffic is still answered, with no new hint: the offset holds
        assert k.qc.query(dk_of(region.listed[0]), timeout=10.0).outcome == "POSSIBLE_MATCH"
        assert k.qc.counts["time_hints"] == 1
        assert k.qc.counts["stray"] == 0  # nothing answered the replays


def test_time_hint_not_signed_by_the_pinned_regional_key_moves_no_clock(region):
    """A hint sealed correctly under the session (here with the regional's KEM key, as a
    leaked KEM key would allow) but signed by another key is dropped: no offset, no
    reseal, no verdict. The real regional's hint for the same query then works."""
    with RecordingClient(region, -365 * DAY) as k:
        held: list[bytes] = []
        k.qc.link.publish = lambda topic, payload, **kw: held.append(payload)  # type: ignore[method-assign]
        got: list[Any] = []
        k.qc.submit(os.urandom(16), dk_of(region.unlisted[1]), got.append, timeout=10.0)
        identity = keys.load_ed25519_private(region.bundle(TID) / "identity.key")
        rs = RegionalSessions(
            region="central",
            kem_private=keys.load_x25519_private(region.broker_dir / "regional-kem.key"),
            terminal_keys=lambda tid: [identity.public_key()] if tid == TID else [],
        )
        with pytest.raises(OutOfWindow) as exc:
            rs.open_query(TID, held[0], time.time())
        forged = rs.seal_time_hint(exc.value.stale, time.time(), Ed25519PrivateKey.generate())
        k.qc._on_message(topics.response_topic("central", TID), forged)
        assert k.qc.counts["bad"] == 1
        assert (k.qc.clock_offset, k.qc.clock_known, k.qc.counts["time_hints"]) == (0.0, False, 0)
        assert (got, len(held)) == ([], 1)  # nothing resealed, no verdict
        # the real regional's hint for the same query: adopted, resealed, answered
        k.qc.link.publish = k._record  # type: ignore[method-assign]
        k.inject(held[0])
        wait_for(lambda: got, "the answer after the real hint")
        assert got[0].outcome == "NO_MATCH"
        assert k.qc.counts["time_hints"] == 1
        assert k.qc.clock_offset == pytest.approx(365 * DAY, abs=5.0)


def test_broker_certificate_outside_authenticated_time_closes_the_link(region):
    """The kiosk's TLS leaves certificate times to authenticated time. Once the regional
    has vouched for a time at which the broker certificate is no longer valid (here: a
    kiosk told it is 20 years on), the link is closed and stays unready on every
    reconnect; with a valid time again it comes back and answers."""
    with RecordingClient(region, 0.0) as k:
        assert k.qc.query(dk_of(region.unlisted[2]), timeout=10.0).outcome == "NO_MATCH"
        assert k.qc.clock_known  # an answer vouches for protocol time
        nb, na = k.qc.link.peer_validity or (0.0, 0.0)
        assert nb < time.time() < na
        connects = k.qc.link.connects
        k.qc.clock_offset = 20 * 365 * DAY
        assert not k.qc.link.check_peer_time()
        wait_for(lambda: not k.qc.connected(), "the link closed")
        wait_for(lambda: k.qc.link.cert_time_refusals >= 2, "a reconnect refused as well")
        assert k.qc.link.connects == connects  # never admitted again
        k.qc.clock_offset = 0.0
        assert k.qc.wait_connected(WAIT)
        assert k.qc.query(dk_of(region.listed[1]), timeout=10.0).outcome == "POSSIBLE_MATCH"
