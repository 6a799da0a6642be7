"""The panel's main loop: provisioned directory in, lights and acknowledgements out.

    run(config_dir, hw)   # hw: a port from hw.py; never returns

The directory is what ``fieldterm provision add-annunciator`` wrote: annunciator.json,
the DER certificate, key and CA, and the site's key ring (lane.key). Every
``ack_interval_ms`` the panel publishes one ack frame, with or without acknowledgements
in it. The key ring is read again every ``KEYS_EVERY_MS``: during a site key rotation a
new lane.key copied onto the board takes effect without a reset.
"""

import gc
import json

import utime as time

from . import frames
from .net import PanelClient
from .panel import Panel

CONFIG = "annunciator.json"
_mem_alloc = gc.mem_alloc  # type: ignore[attr-defined]  # MicroPython's gc
_mem_free = gc.mem_free  # type: ignore[attr-defined]
STEP_MS = 20
KEYS_EVERY_MS = 2000


def load(config_dir):
    """(config dict, read(name) -> bytes, key ring text)."""

    def read(name):
        with open(config_dir + "/" + name, "rb") as f:
            return f.read()

    cfg = json.loads(read(CONFIG))
    if cfg.get("version") != 1:
        raise ValueError(CONFIG + ": version must be 1")
    return cfg, read, read(cfg["lane_key"]).decode()


class Loop:
    def __init__(self, config_dir, hw, log=print, memory_every_ms=10000):
        cfg, read, ring_text = load(config_dir)
        self.cfg = cfg
        self.read = read
        self.hw = hw
        self.log = log
        self.ring_text = ring_text
        self.panel = Panel(cfg, frames.ring_from_text(ring_text), hw, time, log=log)
        self.next_keys = time.ticks_ms()
        self.client = PanelClient(cfg, read, self.panel.on_message, self.idle, log)
        self.interval = cfg.get("ack_interval_ms", 2000)
        self.memory_every = memory_every_ms
        self.next_mem = time.ticks_ms()
        self.peak = 0

    def step(self):
        """Lights, chime and button: run every STEP_MS, connected or not."""
        if self.hw.pressed():
            self.panel.press()
        self.panel.tick()
        self.peak = max(self.peak, _mem_alloc())
        now = time.ticks_ms()
        if time.ticks_diff(now, self.next_keys) >= 0:
            self.next_keys = time.ticks_add(now, KEYS_EVERY_MS)
            self.reload_keys()
        if self.memory_every and time.ticks_diff(now, self.next_mem) >= 0:
            self.next_mem = time.ticks_add(now, self.memory_every)
            gc.collect()
            self.log(f"mem alloc={_mem_alloc()} peak={self.peak} free={_mem_free()}")

    def reload_keys(self):
        """Take a changed lane.key; a bad one (half copied) keeps the ring in force."""
        try:
            text = self.read(self.cfg["lane_key"]).decode()
        except OSError as e:
            text = "unreadable: " + str(e)
        if text == self.ring_text:
            return
        self.ring_text = text  # logged once per change, good or bad
        try:
            keys = frames.ring_from_text(text)
        except ValueError as e:
            self.log("keys kept: " + str(e))
            return
        self.panel.set_keys(keys)

    def idle(self, ms):
        """Keep the panel running for ``ms`` (the reconnect backoff waits here)."""
        end = time.ticks_add(time.ticks_ms(), ms)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            self.step()
            time.sleep_ms(STEP_MS)

    def run(self):
        self.client.start()
        next_ack = time.ticks_ms()
        while True:
            self.client.poll()
            self.step()
            now = time.ticks_ms()
            if time.ticks_diff(now, next_ack) >= 0:
                self.client.send(self.cfg["ack_topic"], self.panel.ack_frame())
                next_ack = time.ticks_add(next_ack, self.interval)
                if time.ticks_diff(next_ack, now) <= 0:  # fell behind (a reconnect)
                    next_ack = time.ticks_add(now, self.interval)
            time.sleep_ms(STEP_MS)


def run(config_dir, hw, log=print, memory_every_ms=10000):
    Loop(config_dir, hw, log, memory_every_ms).run()
