"""The panel's main loop: provisioned directory in, lights and acknowledgements out.

    run(config_dir, hw)   # hw: a port from hw.py; never returns

The directory is what ``fieldterm provision add-annunciator`` wrote: annunciator.json,
the DER certificate, key and CA, and the site's lane key. Every ``ack_interval_ms`` the
panel publishes one ack frame, with or without acknowledgements in it.
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


def load(config_dir):
    """(config dict, read(name) -> bytes, site keys)."""

    def read(name):
        with open(config_dir + "/" + name, "rb") as f:
            return f.read()

    cfg = json.loads(read(CONFIG))
    if cfg.get("version") != 1:
        raise ValueError(CONFIG + ": version must be 1")
    keys = frames.keys_from_hex(read(cfg["lane_key"]).decode())
    return cfg, read, keys


class Loop:
    def __init__(self, config_dir, hw, log=print, memory_every_ms=10000):
        cfg, read, keys = load(config_dir)
        self.cfg = cfg
        self.hw = hw
        self.log = log
        self.panel = Panel(cfg, keys, hw, time, log=log)
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
        if self.memory_every and time.ticks_diff(now, self.next_mem) >= 0:
            self.next_mem = time.ticks_add(now, self.memory_every)
            gc.collect()
            self.log(f"mem alloc={_mem_alloc()} peak={self.peak} free={_mem_free()}")

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
