"""The real annunciator code under the MicroPython unix port, against a real Mosquitto
from the generated config (mutual TLS, generated ACL) and real lane publishers
(``python -m firmware.lane.publisher`` with the kiosks' bundles).

One region for the module: site post-1 with kiosk-001..003 and panel-1 (lanes 1..3),
site post-2 with kiosk-009 and panel-2. Tests run in file order (broker restart last).
"""

from __future__ import annotations

import itertools
import ssl
import threading
import time
from pathlib import Path

import pytest

from firmware.lane import frames
from firmware.protocol import topics
from tests.annunciator.rig import Capture, LiveRig, live_region
from tests.annunciator.rig import pem_identity as _pem_identity

SITE1, SITE2 = "post-1", "post-2"
LANES1 = ("kiosk-001", "kiosk-002", "kiosk-003")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    sites = dict.fromkeys(LANES1, SITE1) | {"kiosk-009": SITE2}
    panels = [("panel-1", SITE1, LANES1), ("panel-2", SITE2, ("kiosk-009",))]
    with live_region(tmp_path_factory.mktemp("annunciator"), sites, panels) as r:
        yield r


def _lane_line(n: int, tid: str, state: str) -> str:
    return rf"^lane {n} {tid} {state}$"


def test_lanes_come_up_idle(rig):
    panel = rig.panels["panel-1"]
    for n, tid in enumerate(LANES1, 1):
        panel.wait_for(_lane_line(n, tid, "idle"), 10)
        panel.wait_for(rf"^led {n} 1 idle$", 10)


def test_possible_match_on_kiosk_002_lights_lane_2_only_within_3_s(rig):
    panel, kiosk = rig.panels["panel-1"], rig.publishers["kiosk-002"]
    mark = panel.mark()
    t0 = time.monotonic()
    kiosk.send("call")
    t_call, _ = panel.wait_for(_lane_line(2, "kiosk-002", "call"), 3.0, after=mark)
    assert t_call - t0 <= 3.0
    print(f"\ncall -> lane 2 lit: {t_call - t0:.2f} s")
    # blinking and chiming: lane 2's LED toggles, the buzzer sounds
    panel.wait_for(r"^led 2 0 call$", 2, after=mark)
    panel.wait_for(r"^led 2 1 call$", 2, after=mark)
    panel.wait_for(r"^buzz 1$", 3, after=mark)
    # lanes 1 and 3 stay as they were: nothing but idle is shown for them (a late
    # "led 3 1 idle" from the lanes coming up is the same steady light, not a change)
    others = [
        x
        for _, x in panel.since(mark)
        if x.startswith(("lane 1 ", "lane 3 ", "led 1 ", "led 3 ")) and not x.endswith(" idle")
    ]
    assert not others, others


def test_panel_acknowledgement_reaches_the_kiosk(rig):
    panel, kiosk = rig.panels["panel-1"], rig.publishers["kiosk-002"]
    mark, kmark = panel.mark(), kiosk.mark()
    panel.send("press")
    panel.wait_for(r"^ack 2 kiosk-002 \d+$", 3, after=mark)
    acked_at = panel.wait_index(_lane_line(2, "kiosk-002", "acked"), 3, after=mark)
    kiosk.wait_for(r"^ack panel-1$", 5, after=kmark)
    # the chime stops (it may have been between two chimes already, so no "buzz 0" need
    # follow): four on-edges of the acked slow blink span more than a chime period (2 s),
    # and in it the buzzer is never switched on; its last word is off. The kiosk's next
    # frames say ACKED (the lane stays acked, not call)
    at = acked_at
    for _ in range(4):
        at = panel.wait_index(r"^led 2 1 acked$", 3, after=at + 1)
    lines = [t for _, t in panel.since(0)]
    after_ack = lines[acked_at : at + 1]
    assert [t for t in lines[: at + 1] if t.startswith("buzz ")][-1] == "buzz 0", after_ack
    assert "buzz 1" not in after_ack, after_ack
    later = panel.mark()
    kiosk.send("idle")
    panel.wait_for(_lane_line(2, "kiosk-002", "idle"), 5, after=later)
    assert not [t for _, t in panel.since(later) if t == "lane 2 kiosk-002 call"]


def test_kiosk_side_acknowledgement_stops_the_call(rig):
    panel, kiosk = rig.panels["panel-1"], rig.publishers["kiosk-001"]
    mark = panel.mark()
    kiosk.send("call")
    panel.wait_for(_lane_line(1, "kiosk-001", "call"), 3, after=mark)
    kiosk.send("idle")  # the officer acknowledged on the kiosk
    panel.wait_for(_lane_line(1, "kiosk-001", "idle"), 5, after=mark)
    panel.wait_for(r"^buzz 0$", 3, after=mark)


def test_frames_on_the_broker_are_all_the_same_size_before_during_after_a_call(rig):
    cert, key = _pem_identity(rig, "panel-1")
    lane = topics.lane_topic("central", SITE1, "kiosk-003")
    ack = topics.lane_ack_topic("central", SITE1, "panel-1")
    kb = rig.region.bundle("kiosk-003")
    cap_lane = Capture(rig.client(cert, key, "cap-lane"), rig.region.service_port, [lane])
    cap_ack = Capture(
        rig.client(kb / "client.crt", kb / "client.key", "cap-ack"),
        rig.region.service_port,
        [topics.lane_ack_filter("central", SITE1)],
    )
    try:
        kiosk, panel = rig.publishers["kiosk-003"], rig.panels["panel-1"]
        cap_lane.wait_count(lane, 2, 10)
        before = len(cap_lane.msgs)
        mark = panel.mark()
        kiosk.send("call")
        panel.wait_for(_lane_line(3, "kiosk-003", "call"), 3, after=mark)
        panel.send("press")
        panel.wait_for(_lane_line(3, "kiosk-003", "acked"), 3, after=mark)
        kiosk.wait_for(r"^ack panel-1$", 5)
        acked_at = len([1 for _, t, _ in cap_lane.msgs if t == lane])
        cap_lane.wait_count(lane, acked_at + 1, 5)  # one frame saying ACKED goes out
        kiosk.send("idle")
        panel.wait_for(_lane_line(3, "kiosk-003", "idle"), 5, after=mark)
        n = len([1 for _, t, _ in cap_lane.msgs if t == lane])
        cap_lane.wait_count(lane, n + 2, 10)
        lane_msgs = [(t, p) for t, tp, p in cap_lane.msgs if tp == lane]
        ack_msgs = [(t, p) for t, tp, p in cap_ack.msgs if tp == ack]
        assert before >= 2 and len(lane_msgs) >= before + 4
        assert {len(p) for _, p in lane_msgs} == {122}
        assert len(ack_msgs) >= 4 and {len(p) for _, p in ack_msgs} == {122}
        # and at one rate: no frame is sent because of the call
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(lane_msgs)]
        assert all(1.5 < g < 2.5 for g in gaps), gaps
        states = [
            frames.parse_lane_body(frames.open_frame(rig.ring(), p, frames.KIND_LANE).body)[0]
            for _, p in lane_msgs
        ]
        assert (
            frames.CALL in states
            and frames.ACKED in states
            and states[0] == states[-1] == frames.IDLE
        )
    finally:
        cap_lane.close()
        cap_ack.close()


def test_replayed_and_forged_frames_change_nothing(rig):
    """With kiosk-002's own certificate (the broker lets it write its lane topic): an old
    CALL frame replayed, one sealed with another site's key and one with a flipped byte."""
    panel = rig.panels["panel-1"]
    keys = rig.keys()
    lane = topics.lane_topic("central", SITE1, "kiosk-002")
    kb = rig.region.bundle("kiosk-002")
    old_call = frames.seal_lane(keys, 1, "kiosk-002", frames.CALL, 99)  # counter 1: long past
    wrong_key = frames.seal_lane(
        rig.keys(SITE2), int(time.time() * 1000) + 10**6, "kiosk-002", frames.CALL, 98
    )
    good = frames.seal_lane(keys, int(time.time() * 1000) + 10**6, "kiosk-002", frames.CALL, 97)
    flipped = good[:50] + bytes([good[50] ^ 4]) + good[51:]
    wrong_sender = frames.seal_lane(
        keys, int(time.time() * 1000) + 10**6, "kiosk-001", frames.CALL, 96
    )
    c = rig.client(kb / "client.crt", kb / "client.key", "forger")
    c.connect("127.0.0.1", rig.region.service_port)
    c.loop_start()
    mark = panel.mark()
    try:
        for payload in (old_call, wrong_key, flipped, wrong_sender):
            c.publish(lane, payload, qos=1).wait_for_publish(10)
        panel.wait_for(r"^refused counter kiosk-002$", 5, after=mark)
        panel.wait_for(r"^refused mac kiosk-002$", 5, after=mark)
        panel.wait_for(r"^refused sender kiosk-002$", 5, after=mark)
        refused = [t for _, t in panel.since(mark) if t.startswith("refused")]
        assert sorted(refused) == sorted(
            [
                "refused counter kiosk-002",
                "refused mac kiosk-002",
                "refused mac kiosk-002",
                "refused sender kiosk-002",
            ]
        )
        # still idle, never a call, and the real kiosk-002 frames keep being accepted
        # (a lane without accepted frames would show down after 5.5 s)
        lines = [t for _, t in panel.since(mark)]
        assert "lane 2 kiosk-002 call" not in lines and "lane 1 kiosk-001 call" not in lines
    finally:
        c.loop_stop()
        c.disconnect()


def test_panel_certificate_cannot_read_another_site_or_publish_frames(rig):
    cert1, key1 = _pem_identity(rig, "panel-1")
    cert2, key2 = _pem_identity(rig, "panel-2")
    other = topics.lane_topic("central", SITE2, "kiosk-009")
    mine = topics.lane_topic("central", SITE1, "kiosk-002")
    spy = Capture(rig.client(cert1, key1, "spy"), rig.region.service_port, [other, mine])
    control = Capture(rig.client(cert2, key2, "control"), rig.region.service_port, [other])
    mark = rig.panels["panel-1"].mark()
    try:
        # panel-2, whose lane it is, gets kiosk-009's frames; panel-1 gets none of them
        control.wait_count(other, 3, 10)
        spy.wait_count(mine, 3, 10)
        assert not [1 for _, t, _ in spy.msgs if t == other]
        # panel-1 publishing a well-sealed CALL frame on kiosk-002's topic: the broker drops it
        forged = frames.seal_lane(
            rig.keys(), int(time.time() * 1000) + 10**7, "kiosk-002", frames.CALL, 5
        )
        spy.c.publish(mine, forged, qos=0)
        n = len([1 for _, t, _ in spy.msgs if t == mine])
        spy.wait_count(mine, n + 2, 10)  # two genuine frames after it
        assert forged not in [p for _, t, p in spy.msgs if t == mine]
        assert "lane 2 kiosk-002 call" not in [t for _, t in rig.panels["panel-1"].since(mark)]
    finally:
        spy.close()
        control.close()


def test_kiosk_killed_shows_its_lane_down_within_6_s(rig):
    panel = rig.panels["panel-1"]
    mark = panel.mark()
    rig.publishers["kiosk-003"].kill()
    t_kill = time.monotonic()
    t_down, _ = panel.wait_for(_lane_line(3, "kiosk-003", "down"), 7, after=mark)
    assert t_down - t_kill <= 6.0, t_down - t_kill
    print(f"\nkiosk killed -> lane 3 down: {t_down - t_kill:.2f} s")
    lines = [t for _, t in panel.since(mark)]
    assert not [x for x in lines if x.startswith(("lane 1 ", "lane 2 "))], lines
    # its own pattern: a double flash (two on-edges 200 ms apart every 2 s)
    panel.wait_for(r"^led 3 1 down$", 3, after=mark)
    rig.start_publisher("kiosk-003")
    panel.wait_for(_lane_line(3, "kiosk-003", "idle"), 5, after=mark)


def test_broker_restart_recovers(rig):
    panel = rig.panels["panel-1"]
    mark = panel.mark()
    rig.region.broker.stop()
    for n, tid in enumerate(LANES1, 1):
        panel.wait_for(_lane_line(n, tid, "down"), 8, after=mark)
    rig.region.broker.start()
    t_up = time.monotonic()
    t_conn, _ = panel.wait_for(r"^mqtt connected 2$", 30, after=mark)
    print(f"\nbroker back -> panel reconnected: {t_conn - t_up:.2f} s")
    for n, tid in enumerate(LANES1, 1):
        panel.wait_for(_lane_line(n, tid, "idle"), 20, after=mark)
    later = panel.mark()
    rig.publishers["kiosk-001"].send("call")
    panel.wait_for(_lane_line(1, "kiosk-001", "call"), 3, after=later)
    rig.publishers["kiosk-001"].send("idle")
    panel.wait_for(_lane_line(1, "kiosk-001", "idle"), 5, after=later)


def test_ram_used_under_the_unix_port(rig):
    panel = rig.panels["panel-1"]
    _, line = panel.wait_for(r"^mem alloc=\d+ peak=\d+ free=\d+$", 5)
    fields = dict(kv.split("=") for kv in line.split()[1:])
    print(f"\nannunciator RAM (gc, unix port): {fields}")
    assert int(fields["alloc"]) < 100_000 and int(fields["peak"]) < 150_000


def _connack(rig: LiveRig, cert: Path, key: Path, cid: str) -> str:
    """Connect with this identity: "connected" on CONNACK 0, else what failed."""
    c = rig.client(cert, key, cid)
    done = threading.Event()
    result: list[str] = []

    def on_connect(_c, _u, _f, rc, _p=None):
        result.append("connected" if rc == 0 else f"refused {rc}")
        done.set()

    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", rig.region.service_port)
    except (ssl.SSLError, OSError) as exc:
        return f"tls: {exc}"
    c.loop_start()
    try:
        done.wait(10)
        return result[0] if result else "no CONNACK"
    finally:
        c.loop_stop()
        c.disconnect()


def test_revoked_panel_certificate_is_refused_by_the_broker(rig):
    """``revoke`` works for panels: after the broker reloads, panel-2's certificate no
    longer gets a CONNACK, while panel-1's still does."""
    cert2, key2 = _pem_identity(rig, "panel-2")
    cert1, key1 = _pem_identity(rig, "panel-1")
    assert _connack(rig, cert2, key2, "before") == "connected"
    assert rig.region.cli("revoke", "panel-2") == 0
    rig.region.broker.reload()
    log_before = len(rig.region.broker.logs())
    outcome = _connack(rig, cert2, key2, "after")
    assert outcome.startswith("tls:") or outcome == "no CONNACK", outcome
    # the broker's reason: the CRL now lists the certificate
    assert "certificate verify failed" in rig.region.broker.logs()[log_before:]
    assert _connack(rig, cert1, key1, "other") == "connected"
