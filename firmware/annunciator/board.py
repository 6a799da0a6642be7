"""Start the panel on a Pico W (or an ESP32): Wi-Fi, the clock, then the main loop.

The board's /main.py is two lines (docs/annunciator.md)::

    from annunciator.board import start
    start()

/panel holds the provisioned directory and /wifi.json ``{"ssid": ..., "password": ...}``.
Pins default to the wiring in docs/annunciator.md; annunciator.json's ``pins`` overrides
them. TLS checks the broker certificate's dates, so the clock is set by NTP first.
"""

import json

import utime as time

from . import hw, main

DEFAULT_PINS = {"leds": [2, 3, 4, 5, 6, 7], "buzzer": 15, "button": 14}


def _wifi(path):
    import network  # noqa: PLC0415 -- board only

    with open(path) as f:
        conf = json.load(f)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.connect(conf["ssid"], conf["password"])
    for _ in range(60):
        if wlan.isconnected():
            return wlan
        time.sleep(1)
    raise OSError("wifi: not connected after 60 s")


def _clock():
    import ntptime  # noqa: PLC0415 -- board only

    for _ in range(10):
        try:
            ntptime.settime()
            return
        except OSError:
            time.sleep(2)


def start(config_dir="/panel", wifi="/wifi.json"):
    _wifi(wifi)
    _clock()
    cfg, _read, _keys = main.load(config_dir)
    pins = dict(DEFAULT_PINS)
    pins.update(cfg.get("pins", {}))
    if "neopixel" in pins:
        port: hw.PinPanel = hw.NeoPixelPanel(
            pins["neopixel"], len(cfg["lanes"]), pins["buzzer"], pins["button"]
        )
    else:
        port = hw.PinPanel(pins["leds"], pins["buzzer"], pins["button"])
    main.run(config_dir, port, memory_every_ms=60000)
