"""The query client and time hints, by injected clock and in-process regional sessions
(no broker): adoption, one reseal, a second hint, a late hint, one new session per skew."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.client.client import SESSION_RETIME, QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.mrz import parse
from firmware.protocol import keys, topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.session import OutOfWindow, RegionalSessions
from tests.support.localregion import TestRegion

TID = "kiosk-001"
DAY = 86400.0
REAL = 1_800_000_000.0  # the regional's (true) time


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    with TestRegion(tmp_path_factory.mktemp("time-client"), terminals=(TID,)) as r:
        yield r.provision().generate_list()


class Rig:
    """A client whose clock is ``skew`` off, a regional (in process) with the real keys."""

    def __init__(self, region: TestRegion, skew: float):
        self.t = REAL
        self.sent: list[bytes] = []
        self.qc = QueryClient(
            ClientConfig.load(region.terminal_toml(TID)), clock=self.local, timer=self.elapsed
        )
        self.qc.link.publish = self._record  # type: ignore[method-assign]
        self.skew = skew
        term = json.loads((region.broker_dir / "terminals.json").read_text())["terminals"]
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(term[TID]["keys"][0]["ed25519"]))
        self.rs = RegionalSessions(
            region="central",
            kem_private=keys.load_x25519_private(region.broker_dir / "regional-kem.key"),
            terminal_keys=lambda tid: [pub] if tid == TID else [],
        )
        self.sign = keys.load_ed25519_private(region.broker_dir / "regional-sign.key")
        self.dk = DocumentKey.from_mrz(parse(region.unlisted[0]))

    def local(self) -> float:
        return self.t + self.skew

    def elapsed(self) -> float:
        """The client's monotonic timer: true time passing (deadlines, round trips)."""
        return self.t

    def _record(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        self.sent.append(payload)

    def deliver(self, payload: bytes) -> None:
        self.qc._on_message(topics.response_topic("central", TID), payload)

    def regional_reply(self, payload: bytes) -> bytes:
        """What the regional answers at true time ``self.t``: a hint or an answer."""
        try:
            q = self.rs.open_query(TID, payload, self.t)
        except OutOfWindow as exc:
            return self.rs.seal_time_hint(exc.stale, self.t, self.sign)
        return self.rs.seal_response(q, Response(q.query_id, "NO_MATCH", list_version=3))


@pytest.mark.parametrize("skew", [-30 * DAY, 365 * DAY])
def test_hint_adopted_query_resealed_once_and_answered(region, skew):
    rig = Rig(region, skew)
    got: list[Verdict] = []
    clocks: list[float] = []
    rig.qc.on_clock = clocks.append
    rig.qc.submit(os.urandom(16), rig.dk, got.append, timeout=2.0)
    rig.t += 0.05
    rig.deliver(rig.regional_reply(rig.sent[0]))  # a hint
    assert got == [] and len(rig.sent) == 2  # resealed at once, same round of the link
    assert rig.qc.clock_offset == pytest.approx(-skew, abs=0.05)
    assert clocks == [rig.qc.clock_offset] and rig.qc.clock_known
    rig.t += 0.05
    rig.deliver(rig.regional_reply(rig.sent[1]))  # the real answer
    assert [v.outcome for v in got] == ["NO_MATCH"]
    assert (rig.qc.counts["time_hints"], rig.qc.counts["resealed"]) == (1, 1)


def test_second_hint_for_the_same_query_gives_error_not_a_loop(region):
    rig = Rig(region, -DAY)
    got: list[Verdict] = []
    rig.qc.submit(os.urandom(16), rig.dk, got.append, timeout=2.0)
    rig.deliver(rig.regional_reply(rig.sent[0]))
    rig.t += 3600  # the resealed copy reaches the regional an hour late: off again
    rig.deliver(rig.regional_reply(rig.sent[1]))
    assert [v.outcome for v in got] == ["ERROR"]
    assert "twice" in (got[0].reason or "")
    assert len(rig.sent) == 2  # no third copy


def test_hint_after_the_deadline_is_ignored(region):
    """A hint the broker held back past the query's deadline moves no clock."""
    rig = Rig(region, -DAY)
    got: list[Verdict] = []
    rig.qc.submit(os.urandom(16), rig.dk, got.append, timeout=2.0)
    hint = rig.regional_reply(rig.sent[0])
    rig.t += 3600.0
    assert rig.qc.sweep() == 1 and got[0].outcome == "TIMEOUT"
    rig.deliver(hint)
    assert (rig.qc.clock_offset, rig.qc.clock_known) == (0.0, False)
    assert rig.qc.counts["stray"] == 1 and len(rig.sent) == 1


def test_pipelined_queries_each_hinted_share_one_new_session(region):
    rig = Rig(region, -DAY)
    got: list[Verdict] = []
    for _ in range(4):
        rig.qc.submit(os.urandom(16), rig.dk, got.append, timeout=2.0)
    sessions = []
    for payload in list(rig.sent):
        rig.deliver(rig.regional_reply(payload))
        sessions.append(rig.qc._sessions[-1].session_id)
    assert len(set(sessions)) == 1  # renewed once, not per hint
    for payload in rig.sent[4:]:
        rig.deliver(rig.regional_reply(payload))
    assert [v.outcome for v in got] == ["NO_MATCH"] * 4
    assert abs(rig.qc.clock_offset - DAY) < SESSION_RETIME
