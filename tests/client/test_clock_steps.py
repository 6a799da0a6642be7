"""Query deadlines run on the monotonic clock (issue 14): a wall-clock step back of 150 s
does not stall a query in flight, a step forward of days does not expire it early, and a
step during a time hint's round trip does not skew the adopted offset.

The wall clock steps (an injected function); deadlines come from the client's ``timer``:
a deterministic fake in the first tests, the real ``time.monotonic`` with the client's
own sweeper thread in the last two."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.mrz import parse
from firmware.protocol import keys, topics
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.messages import Response
from firmware.protocol.session import OutOfWindow, RegionalSessions
from tests.support.localregion import TestRegion as Region

pytestmark = pytest.mark.timeout(60)
TID = "kiosk-001"
T0 = 1_800_000_000.0
DAYS = 3 * 86400.0


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    with Region(tmp_path_factory.mktemp("clock-steps"), terminals=(TID,)) as r:
        yield r.provision().generate_list()


class Clocks:
    """A wall clock that steps, a monotonic timer that only moves forward."""

    def __init__(self) -> None:
        self.wall_t, self.mono_t = T0, 500.0

    def wall(self) -> float:
        return self.wall_t

    def mono(self) -> float:
        return self.mono_t

    def advance(self, s: float) -> None:
        self.wall_t += s
        self.mono_t += s


class Regional:
    """The regional's side in process, with the region's real keys."""

    def __init__(self, region: Region):
        term = json.loads((region.broker_dir / "terminals.json").read_text())["terminals"]
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(term[TID]["keys"][0]["ed25519"]))
        self.rs = RegionalSessions(
            region="central",
            kem_private=keys.load_x25519_private(region.broker_dir / "regional-kem.key"),
            terminal_keys=lambda tid: [pub] if tid == TID else [],
        )
        self.sign = keys.load_ed25519_private(region.broker_dir / "regional-sign.key")

    def reply(self, payload: bytes, now: float) -> bytes:
        try:
            q = self.rs.open_query(TID, payload, now)
        except OutOfWindow as exc:
            return self.rs.seal_time_hint(exc.stale, now, self.sign)
        return self.rs.seal_response(q, Response(q.query_id, "NO_MATCH", list_version=1))


def client(region: Region, wall, timer=None) -> tuple[QueryClient, list[bytes]]:
    kw = {} if timer is None else {"timer": timer}
    qc = QueryClient(ClientConfig.load(region.terminal_toml(TID)), clock=wall, **kw)
    sent: list[bytes] = []

    def record(topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        sent.append(payload)

    qc.link.publish = record  # type: ignore[method-assign]
    return qc, sent


def dk(region: Region) -> DocumentKey:
    return DocumentKey.from_mrz(parse(region.unlisted[0]))


@pytest.mark.parametrize("step", [-150.0, +DAYS], ids=["back-150s", "forward-3-days"])
def test_a_wall_step_moves_no_deadline(region, step):
    c = Clocks()
    qc, _sent = client(region, c.wall, c.mono)
    got: list[Verdict] = []
    try:
        qc.submit(os.urandom(16), dk(region), got.append, timeout=2.0)
        c.advance(0.5)
        c.wall_t += step  # NTP, a technician, a Pi without RTC catching up
        assert qc.sweep() == 0 and got == []  # forward: not expired early
        c.advance(1.4)
        assert qc.sweep() == 0
        c.advance(0.2)  # 2.1 s of real time since the submit
        assert qc.sweep() == 1  # back: not stalled by the step
        assert got[0].outcome == "TIMEOUT"
        assert got[0].latency_s == pytest.approx(2.1)  # measured on the timer
    finally:
        qc.close()


def test_a_step_during_a_hinted_round_trip_does_not_skew_the_offset(region):
    """Kiosk 1 day behind; its wall clock steps back another 150 s while the query is out.
    The offset is the regional's time minus the *current* wall time, less half the round
    trip as the timer measured it: exactly the clock's error after the step."""
    c = Clocks()
    c.wall_t = T0 - 86400.0
    regional = Regional(region)
    qc, sent = client(region, c.wall, c.mono)
    got: list[Verdict] = []
    try:
        qc.submit(os.urandom(16), dk(region), got.append, timeout=2.0)
        c.advance(0.1)
        hint = regional.reply(sent[0], T0 + 0.1)  # the regional's true time
        c.wall_t -= 150.0
        c.advance(0.1)
        qc._on_message(topics.response_topic("central", TID), hint)
        # true time at receipt T0 + 0.2, the wall clock then T0 - 86400 - 150 + 0.2;
        # the hint was made halfway (round trip 0.2 s on the timer)
        assert qc.clock_offset == pytest.approx(86400.0 + 150.0, abs=1e-6)
        qc._on_message(topics.response_topic("central", TID), regional.reply(sent[1], T0 + 0.2))
        assert [v.outcome for v in got] == ["NO_MATCH"]
    finally:
        qc.close()


def collect(got: list[Verdict], done: threading.Event) -> Callable[[Verdict], None]:
    def on_verdict(v: Verdict) -> None:
        got.append(v)
        done.set()

    return on_verdict


def _stepping_wall(step: float, after: float) -> tuple[Callable[[], float], threading.Event]:
    """time.time, stepped by ``step`` once ``after`` s have passed (another thread)."""
    base = {"offset": 0.0}
    stepped = threading.Event()

    def step_later() -> None:
        time.sleep(after)
        base["offset"] = step
        stepped.set()

    threading.Thread(target=step_later, daemon=True).start()
    return (lambda: time.time() + base["offset"]), stepped


def test_real_sweeper_times_out_on_time_after_a_step_back(region):
    wall, stepped = _stepping_wall(-150.0, 0.05)
    qc, _sent = client(region, wall)
    done = threading.Event()
    got: list[Verdict] = []
    qc.start()
    try:
        t0 = time.monotonic()
        qc.submit(os.urandom(16), dk(region), collect(got, done), timeout=0.4)
        assert done.wait(5.0), "no TIMEOUT: the step back stalled the query"
        took = time.monotonic() - t0
        assert stepped.is_set() and got[0].outcome == "TIMEOUT"
        assert 0.38 <= took < 3.0, took  # not 150 s; slack for a loaded machine
    finally:
        qc.close()


def test_real_sweeper_does_not_expire_early_after_a_step_forward(region):
    wall, stepped = _stepping_wall(+DAYS, 0.02)
    qc, sent = client(region, wall)
    regional = Regional(region)
    done = threading.Event()
    got: list[Verdict] = []
    qc.start()
    try:
        qc.submit(os.urandom(16), dk(region), collect(got, done), timeout=8.0)
        assert stepped.wait(2.0)
        # Evidence that the sweeper has run since the step: a second query's TIMEOUT.
        probe = threading.Event()
        qc.submit(os.urandom(16), dk(region), lambda v: probe.set(), timeout=0.2)
        assert probe.wait(3.0)
        assert got == []  # the first, 8 s query was not expired by the 3-day jump
        answer = regional.reply(sent[0], time.time())  # the regional's clock is right
        qc._on_message(topics.response_topic("central", TID), answer)
        assert done.wait(2.0) and [v.outcome for v in got] == ["NO_MATCH"]
    finally:
        qc.close()
