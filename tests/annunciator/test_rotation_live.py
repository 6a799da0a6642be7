"""Site key rotation for real: the MicroPython panel under the unix port, two kiosks' lane
publishers and Mosquitto (mutual TLS, generated ACL), with ``rotate-site-key`` run in
its three steps while everything runs. No lane goes down and no frame is refused during
the rollover; afterwards frames under the retired key are refused, and the key a revoked
panel kept opens none of the new frames.

Site post-1: kiosk-001, kiosk-002, panel-1 (live) and panel-2 (revoked before the
rotation). The devices run from their provisioned directories, which the tool rewrites,
so "copying lane.key onto the device" is the tool's own write here.
"""

from __future__ import annotations

import time

import pytest

from firmware.lane import frames
from firmware.lane.keyring import KeyRing
from firmware.protocol import topics
from tests.annunciator.rig import (
    Capture,
    LineProc,
    LiveRig,
    live_region,
    pem_identity,
    run_micropython,
)

SITE = "post-1"
LANES = ("kiosk-001", "kiosk-002")
LANE2 = topics.lane_topic("central", SITE, "kiosk-002")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    panels = [(pid, SITE, LANES) for pid in ("panel-1", "panel-2")]
    with live_region(tmp_path_factory.mktemp("rotation"), dict.fromkeys(LANES, SITE), panels) as r:
        yield r


def wait_stats(kiosk: LineProc, want: str, timeout: float = 8.0) -> str:
    """Ask the publisher for its stats until the line contains ``want`` (it re-reads
    lane.key for every frame, every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        mark = kiosk.mark()
        kiosk.send("stats")
        _, line = kiosk.wait_for(r"^stats ", 5, after=mark)
        if want in line:
            return line
        if time.monotonic() > deadline:
            raise AssertionError(f"kiosk stats {line!r} do not say {want!r}")
        time.sleep(0.5)


def wait_lines(proc: LineProc, line: str, n: int, after: int, timeout: float = 5.0) -> None:
    """Until ``line`` was printed ``n`` times since ``after``."""
    deadline = time.monotonic() + timeout
    while sum(t == line for _, t in proc.since(after)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not {n} times: {proc.since(after)[-20:]}")
        time.sleep(0.05)


def step(rig: LiveRig, *flags: str, ring: str) -> None:
    """One step of the rotation; every device is seen taking the new ring."""
    panel = rig.panels["panel-1"]
    mark = panel.mark()
    assert rig.region.cli("rotate-site-key", "--site", SITE, *flags) == 0
    panel.wait_for(rf"^keys {ring}$", 6, after=mark)
    for tid in LANES:
        wait_stats(rig.publishers[tid], f"keys {ring}")


def test_rotation_keeps_every_lane_lit_and_retires_the_old_key(rig):
    panel = rig.panels["panel-1"]
    panel.wait_for(r"^keys send=1 accept=1$", 5)
    for n, tid in enumerate(LANES, 1):
        panel.wait_for(rf"^lane {n} {tid} idle$", 10)
    revoked_ring = (rig.panel_dir("panel-2") / "lane.key").read_text()
    assert rig.region.cli("revoke", "panel-2") == 0
    cert, key = pem_identity(rig, "panel-1")
    cap = Capture(rig.client(cert, key, "cap"), rig.region.service_port, [LANE2])
    kb = rig.region.bundle("kiosk-002")
    forger = rig.client(kb / "client.crt", kb / "client.key", "forger")
    forger.connect("127.0.0.1", rig.region.service_port)
    forger.loop_start()
    start = panel.mark()
    try:
        old_frames = cap.wait_count(LANE2, 1, 5)
        assert {f[2] for f in old_frames} == {1}  # byte 2: the key id

        step(rig, ring="send=1 accept=1,2")
        step(rig, "--switch", ring="send=2 accept=1,2")
        n = len(cap.wait_count(LANE2, 1, 5))
        new_frames = cap.wait_count(LANE2, n + 1, 5)[n:]
        assert {len(f) for f in new_frames} == {122} and {f[2] for f in new_frames} == {2}

        # a call and its acknowledgement, both sealed under the new key
        mark, kmark = panel.mark(), rig.publishers["kiosk-002"].mark()
        rig.publishers["kiosk-002"].send("call")
        panel.wait_for(r"^lane 2 kiosk-002 call$", 3, after=mark)
        panel.send("press")
        rig.publishers["kiosk-002"].wait_for(r"^ack panel-1$", 5, after=kmark)
        rig.publishers["kiosk-002"].send("idle")
        panel.wait_for(r"^lane 2 kiosk-002 idle$", 5, after=mark)

        step(rig, "--finish", ring="send=2 accept=2")
        # the whole rollover: never a lane down, never a frame refused
        during = [t for _, t in panel.since(start)]
        assert not [t for t in during if t.endswith(" down") or t.startswith("refused")], during

        # after it: a genuine frame of before the rotation, replayed, and a fresh frame
        # sealed with the retired key are refused as 'key' (the kiosk's own certificate
        # may write its lane topic, so only the key stops them)
        retired = KeyRing.from_text(revoked_ring).send
        fresh = frames.seal_lane(
            retired, int(time.time() * 1000) + 10**6, "kiosk-002", frames.CALL, 77
        )
        mark = panel.mark()
        for payload in (old_frames[-1], fresh):
            forger.publish(LANE2, payload, qos=1).wait_for_publish(10)
        wait_lines(panel, "refused key kiosk-002", 2, mark)
        refused = [t for _, t in panel.since(mark) if t.startswith("refused")]
        assert refused == ["refused key kiosk-002"] * 2, refused
        assert "lane 2 kiosk-002 call" not in [t for _, t in panel.since(mark)]

        # and the kiosks refuse an acknowledgement under the retired key (panel-1's
        # certificate may write its ack topic)
        ack = frames.seal_ack(retired, (5 << 32) | 1, "panel-1", ())
        p1 = rig.client(cert, key, "p1-ack")
        p1.connect("127.0.0.1", rig.region.service_port)
        p1.loop_start()
        try:
            p1.publish(topics.lane_ack_topic("central", SITE, "panel-1"), ack, qos=1)
            line = wait_stats(rig.publishers["kiosk-001"], "refused={'key': 1}")
            assert line.endswith("keys send=2 accept=2"), line
        finally:
            p1.loop_stop()
            p1.disconnect()
        after = cap.wait_count(LANE2, len(cap.wait_count(LANE2, 1, 5)) + 1, 5)[-1]
    finally:
        cap.close()
        forger.loop_stop()
        forger.disconnect()

    # the revoked panel's copy (key 1 only) opens none of the new frames, under
    # MicroPython as on the kiosk side
    with pytest.raises(frames.FrameError) as e:
        frames.open_frame(KeyRing.from_text(revoked_ring), after, frames.KIND_LANE)
    assert e.value.reason == "key"
    relabelled = frames.SiteKeys(2, retired.enc, retired.mac)  # the old key, new id
    with pytest.raises(frames.FrameError) as e:
        frames.open_frame(KeyRing.single(relabelled), after, frames.KIND_LANE)
    assert e.value.reason == "mac"
    code = (
        "import json, binascii\nfrom annunciator import frames as f\n"
        f"send, ring = f.ring_from_text({revoked_ring!r})\n"
        f"data = binascii.unhexlify({after.hex()!r})\nout = []\n"
        "for r in (ring, {2: (2,) + send[1:]}):\n"
        "    try:\n        f.open_frame(r, data, f.KIND_LANE); out.append('opened')\n"
        "    except f.FrameError as e:\n        out.append(e.reason)\n"
        "print(json.dumps(out))\n"
    )
    assert run_micropython(code) == ["key", "mac"]
