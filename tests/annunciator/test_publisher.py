"""The kiosk's lane publisher without a broker: frames, calls, and which acks count."""

from __future__ import annotations

from firmware.lane import frames
from firmware.lane.keyring import KeyRing
from firmware.lane.publisher import LanePublisher

KEYS = frames.SiteKeys.derive(bytes(range(32)))
RING = KeyRing.single(KEYS)
OTHER = frames.SiteKeys.derive(bytes(32))
ACK_TOPIC = "ft/v1/central/lane-ack/post-1/panel-1"


class FakeLink:
    def __init__(self):
        self.subs = []
        self.sent = []

    def add_subscription(self, f, handler, on_result=None):
        self.subs.append(f)

    def publish(self, topic, payload, qos=1, retain=False):
        self.sent.append((topic, payload, qos))


def _pub(state, ring=lambda: RING):
    acks = []
    clock = iter(range(1_000, 10**9, 1)).__next__
    p = LanePublisher(
        FakeLink(), region="central", site="post-1", terminal="kiosk-002", keys=ring,
        state=lambda: state[0], on_ack=acks.append, wall=lambda: clock() / 1000,
    )  # fmt: skip
    return p, acks


def _lane(p):
    o = frames.open_frame(RING, p.next_frame(), frames.KIND_LANE)
    return (o.counter, *frames.parse_lane_body(o.body))


def test_call_gets_an_id_and_counters_rise():
    state = [frames.IDLE]
    p, _ = _pub(state)
    c1, s1, call1 = _lane(p)
    state[0] = frames.CALL
    c2, s2, call2 = _lane(p)
    c3, _, call3 = _lane(p)
    assert (s1, call1) == (frames.IDLE, 0) and s2 == frames.CALL and call2 != 0 and call3 == call2
    assert c1 < c2 < c3
    assert p.topic == "ft/v1/central/lane/post-1/kiosk-002"
    assert p.ack_filter == "ft/v1/central/lane-ack/post-1/+"


def test_only_a_genuine_ack_of_the_current_call_counts():
    state = [frames.CALL]
    p, acks = _pub(state)
    _, _, call = _lane(p)
    epoch = 0xABCD << 32
    p.on_ack_message(ACK_TOPIC, frames.seal_ack(OTHER, epoch | 1, "panel-1", (call,)))  # wrong key
    p.on_ack_message(
        ACK_TOPIC, frames.seal_ack(KEYS, epoch | 2, "panel-2", (call,))
    )  # not its topic
    p.on_ack_message(
        ACK_TOPIC, frames.seal_ack(KEYS, epoch | 3, "panel-1", (call ^ 1,))
    )  # other call
    good = frames.seal_ack(KEYS, epoch | 4, "panel-1", (call,))
    flipped = good[:30] + bytes([good[30] ^ 1]) + good[31:]
    p.on_ack_message(ACK_TOPIC, flipped)
    assert acks == [] and p.refused == {"mac": 2, "sender": 1}
    p.on_ack_message(ACK_TOPIC, good)
    assert acks == ["panel-1"]
    p.on_ack_message(ACK_TOPIC, good)  # replayed
    assert p.refused["counter"] == 1 and acks == ["panel-1"]
    assert _lane(p)[1] == frames.ACKED
    state[0] = frames.IDLE
    assert _lane(p)[1:] == (frames.IDLE, 0)
    state[0] = frames.CALL  # a new call: the old ack (even re-sent in a new epoch) is no ack
    _, s, new_call = _lane(p)
    p.on_ack_message(ACK_TOPIC, frames.seal_ack(KEYS, (7 << 32) | 1, "panel-1", (call,)))
    assert s == frames.CALL and new_call != call and acks == ["panel-1"]
    assert _lane(p)[1] == frames.CALL


def test_frames_are_one_size_in_every_state():
    state = [frames.IDLE]
    p, _ = _pub(state)
    sizes = set()
    for s in (frames.IDLE, frames.CALL, frames.OUT_OF_SERVICE, frames.IDLE):
        state[0] = s
        sizes.add(len(p.next_frame()))
    assert sizes == {frames.FRAME_LEN}


def test_a_new_match_right_after_another_is_a_new_call():
    state, key = [frames.CALL], [1]
    p, _ = _pub(state)
    p.call_key = lambda: key[0]
    _, _, call1 = _lane(p)
    assert _lane(p)[2] == call1
    key[0] = 2  # the officer acknowledged scan 1 and scan 2 latched within one interval
    _, s, call2 = _lane(p)
    assert s == frames.CALL and call2 not in (0, call1)


def test_a_rotation_switches_the_sealing_key_and_retires_the_old_one():
    """The ring is read for every frame: staged (send 1, accept 1+2), switched (send 2),
    finished (only 2). Acks under either key count while both are held; after the
    rollover an ack under key 1 is refused as 'key'."""
    new = frames.SiteKeys.derive(bytes(range(1, 33)), 2)
    ring = [KeyRing(KEYS, (KEYS, new))]
    p, acks = _pub([frames.CALL], lambda: ring[0])
    assert frames.open_frame(ring[0], p.next_frame(), frames.KIND_LANE).key_id == 1
    epoch = 0x51 << 32
    p.on_ack_message(ACK_TOPIC, frames.seal_ack(new, epoch | 1, "panel-1", ()))  # a switched panel
    assert p.refused == {}
    ring[0] = KeyRing(new, (KEYS, new))
    opened = frames.open_frame(ring[0], p.next_frame(), frames.KIND_LANE)
    assert opened.key_id == 2
    ring[0] = KeyRing.single(new)
    p.on_ack_message(ACK_TOPIC, frames.seal_ack(KEYS, epoch | 2, "panel-1", ()))
    assert p.refused == {"key": 1}
    call = frames.parse_lane_body(opened.body)[1]
    p.on_ack_message(ACK_TOPIC, frames.seal_ack(new, epoch | 3, "panel-1", (call,)))
    assert acks == ["panel-1"]
