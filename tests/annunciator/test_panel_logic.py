"""The panel's logic under the MicroPython unix port with a fake clock: each lane state's
light pattern and the chime, as timelines; patterns told apart by timing alone."""

from __future__ import annotations

import pytest

from tests.annunciator.rig import run_micropython

SCRIPT = r"""
import json
from annunciator import frames, patterns
from annunciator.panel import Panel

class Clock:
    t = 0
    def ticks_ms(self): return self.t
    def ticks_diff(self, a, b): return a - b

class Hw:
    def __init__(self): self.ev = []
    def set_lane(self, i, on, state): self.ev.append([clock.t, "led", i + 1, on, state])
    def buzzer(self, on): self.ev.append([clock.t, "buzz", on])

clock = Clock()
keys = frames.derive(bytes(32))
cfg = {"id": "panel-1", "lanes": [{"id": "k1", "topic": "t/1"}, {"id": "k2", "topic": "t/2"}]}
hw = Hw()
logs = []
timed = []
def log(m):
    logs.append(m)
    timed.append([clock.t, m])
p = Panel(cfg, (keys, {1: keys}), hw, clock, log=log, epoch=1)
n = [0]
def frame(lane, state, call):
    n[0] += 1
    p.on_message(b"t/%d" % lane, frames.seal(keys, frames.KIND_LANE, n[0], "k%d" % lane, frames.lane_body(state, call)))
def run(until):
    while clock.t < until:
        if clock.t % 2000 == 0:
            frame(1, frames.IDLE, 0)
            if clock.t < 6000:
                frame(2, frames.CALL if clock.t >= 2000 else frames.IDLE, 42)
        p.tick()
        clock.t += 10
run(4000)
p.press()
run(20000)
ack = frames.open_frame({1: keys}, p.ack_frame(), frames.KIND_ACK)
out = {"ev": hw.ev, "logs": logs, "timed": timed, "ack": [ack[0], ack[1], list(frames.parse_ack_body(ack[2]))]}
out["distinct"] = [[patterns.light(s, t) for t in range(0, 2000, 10)] for s in patterns.DISPLAY_STATES]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def run():
    return run_micropython(SCRIPT)


def _edges(run, lane, t0, t1):
    return [
        (t, on)
        for t, kind, *rest in run["ev"]
        if kind == "led" and rest[0] == lane and t0 <= t < t1
        for on in [rest[1]]
    ]


def test_state_changes_in_order(run):
    assert [x for x in run["logs"] if x.startswith("lane 2")] == [
        "lane 2 k2 idle",  # its first frame came before the first tick
        "lane 2 k2 call",
        "lane 2 k2 acked",  # the button, at 4.0 s
        "lane 2 k2 down",  # no frame since 4.0 s: down at 9.5 s
    ]
    assert [x for x in run["logs"] if x.startswith("lane 1")] == ["lane 1 k1 idle"]
    assert "ack 2 k2 42" in run["logs"]


def test_call_blinks_at_4_hz_and_chimes(run):
    # on (idle was steady on, and the new state is written at once, light still on),
    # then 125 ms off / 125 ms on (ticks every 10 ms)
    assert _edges(run, 2, 2000, 2800) == [
        (2000, True),
        (2130, False),
        (2250, True),
        (2380, False),
        (2500, True),
        (2630, False),
        (2750, True),
    ]
    buzz = [(t, v) for t, kind, *rest in run["ev"] if kind == "buzz" for v in [rest[0]]]
    assert buzz[:3] == [(0, False), (2000, True), (2150, False)]  # 150 ms every 2 s
    assert [t for t, v in buzz if v] == [2000]  # one chime, then the button at 4.0 s


def test_acked_blinks_at_1_hz_and_down_double_flashes(run):
    assert [t for t, v in _edges(run, 2, 4000, 9000) if v] == [4000, 5000, 6000, 7000, 8000]
    down = [t for t, v in _edges(run, 2, 9500, 14000) if v]
    assert down == [10000, 10200, 12000, 12200]
    assert _edges(run, 1, 2000, 20000) == []  # idle: steady on, never toggled


def test_ack_frame_names_the_call_until_the_lane_moves_on(run):
    counter, sender, calls = run["ack"]
    assert counter == (1 << 32) | 1 and sender == "panel-1" and calls == [42]


def test_patterns_differ_by_timing_alone(run):
    waves = [tuple(w) for w in run["distinct"]]
    assert len(set(waves)) == len(waves)  # no two states look alike on one LED


def test_every_state_change_reaches_the_port_with_the_new_state(run):
    # A NeoPixel's colour is the state's: when the state changes while the light stays
    # on (idle -> call at 2.0 s), the port is told in the same tick anyway.
    # Found live: "lane 1 idle" was logged but the port last heard "led 1 1 down".
    changes = [
        (t, int(m.split()[1]), m.split()[-1]) for t, m in run["timed"] if m.startswith("lane ")
    ]
    assert len(changes) == 5
    told = {(t, rest[0], rest[2]) for t, kind, *rest in run["ev"] if kind == "led"}
    assert [c for c in changes if c not in told] == []
