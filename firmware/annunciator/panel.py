"""The panel's logic, free of I/O: lane frames in, lights, chime and acknowledgements out.

:class:`Panel` is fed every MQTT message (``on_message``) and the clock (``tick``); it
drives a hardware port (``set_lane(i, on, state)``, ``buzzer(on)``, see hw.py) and
gives the ack frame to publish every ``ack_interval_ms`` whatever happened, so the
broker sees the same size at the same rate before, during and after a call.
"""

import struct

from . import frames, patterns

_STATE_NAMES = {
    frames.IDLE: patterns.IDLE,
    frames.CALL: patterns.CALL,
    frames.ACKED: patterns.ACKED,
    frames.OUT_OF_SERVICE: patterns.OUT_OF_SERVICE,
}


class Lane:
    def __init__(self, index, lane_id, topic):
        self.index = index
        self.id = lane_id
        self.topic = topic
        self.state = frames.IDLE
        self.call = 0
        self.last_ok = None  # ticks of the last valid frame, None: never
        self.shown = None
        self.light = None


class Panel:
    def __init__(self, cfg, keys, hw, clock, *, log=print, epoch=None):
        """``keys``: (send keys, {key id: keys}) from ``frames.ring_from_text``."""
        self.id = cfg["id"]
        self.hw = hw
        self.clock = clock  # .ticks_ms(), .ticks_diff(a, b)
        self.log = log
        self.set_keys(keys)
        self.down_after = cfg.get("down_after_ms", 5500)
        self.lanes = [Lane(i, ln["id"], ln["topic"]) for i, ln in enumerate(cfg["lanes"])]
        self.by_topic = {ln.topic: ln for ln in self.lanes}
        self.counters = frames.LaneCounter()
        self.acked = []  # call ids acknowledged here, newest last (at most 7 are sent)
        self.refused = {}  # reason -> count
        self.accepted = 0
        # 24 bits: the counter is epoch u24 ‖ seq u32 in the frame's 56-bit counter field
        self.epoch = epoch if epoch is not None else struct.unpack(">I", _urandom(4))[0] >> 8
        self.seq = 0
        self.buzzing = None

    def set_keys(self, keys):
        """A new key ring (the lane.key file changed during a site key rotation)."""
        self.send_keys, self.ring = keys
        self.log(f"keys send={self.send_keys[0]} accept={_ids(self.ring)}")

    # -- input -----------------------------------------------------------------------------
    def on_message(self, topic, msg):
        """A message on a lane topic: accepted only if it opens under the site key, names
        the lane the topic is for, and carries a higher counter than the last one."""
        topic = topic.decode() if isinstance(topic, (bytes, bytearray)) else topic
        lane = self.by_topic.get(topic)
        if lane is None:
            return self._refuse("topic", topic)
        try:
            counter, sender, body = frames.open_frame(self.ring, bytes(msg), frames.KIND_LANE)
            if sender != lane.id:
                raise frames.FrameError("sender")
            state, call = frames.parse_lane_body(body)
        except frames.FrameError as exc:
            return self._refuse(exc.reason, lane.id)
        if not self.counters.accept(sender, counter):
            return self._refuse("counter", lane.id)
        lane.state, lane.call = state, call
        lane.last_ok = self.clock.ticks_ms()
        self.accepted += 1
        return None

    def _refuse(self, reason, where):
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.log(f"refused {reason} {where}")

    def press(self):
        """The acknowledge button: every lane calling now is acknowledged."""
        for lane in self.lanes:
            if self.display_state(lane, self.clock.ticks_ms()) == patterns.CALL:
                self.acked.append(lane.call)
                self.log(f"ack {lane.index + 1} {lane.id} {lane.call}")
        del self.acked[: max(0, len(self.acked) - frames.MAX_ACK_CALLS)]

    # -- output ----------------------------------------------------------------------------
    def display_state(self, lane, now):
        if lane.last_ok is None or self.clock.ticks_diff(now, lane.last_ok) > self.down_after:
            return patterns.DOWN
        if lane.state == frames.CALL and lane.call in self.acked:
            return patterns.ACKED  # acknowledged here; the kiosk confirms in its next frame
        return _STATE_NAMES[lane.state]

    def tick(self):
        """Drive the lights and the buzzer for the current time."""
        now = self.clock.ticks_ms()
        calling = False
        for lane in self.lanes:
            shown = self.display_state(lane, now)
            changed = shown != lane.shown
            if changed:
                lane.shown = shown
                self.log(f"lane {lane.index + 1} {lane.id} {shown}")
            calling = calling or shown == patterns.CALL
            on = patterns.light(shown, now)
            # a new state is written even when the light stays on: a NeoPixel's colour
            # is the state's, and the port must not keep showing the old one
            if on != lane.light or changed:
                lane.light = on
                self.hw.set_lane(lane.index, on, shown)
        buzz = patterns.chime(calling, now)
        if buzz != self.buzzing:
            self.buzzing = buzz
            self.hw.buzzer(buzz)

    def ack_frame(self):
        """The next ack frame (sent every interval, with or without acknowledgements)."""
        self.seq += 1
        counter = (self.epoch << 32) | self.seq
        live = [c for c in self.acked if any(ln.call == c for ln in self.lanes)]
        self.acked = live
        return frames.seal(
            self.send_keys,
            frames.KIND_ACK,
            counter,
            self.id,
            frames.ack_body(live[-frames.MAX_ACK_CALLS :]),
        )


def _ids(ring):
    return ",".join(str(k) for k in sorted(ring))


def _urandom(n):
    import os  # noqa: PLC0415

    return os.urandom(n)
