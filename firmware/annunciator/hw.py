"""The panel's hardware port: one light per lane, a buzzer, an acknowledge button.

Every backend has ``set_lane(index, on, state)``, ``buzzer(on)`` and ``pressed()`` (True
once per press). :class:`PinPanel` and :class:`NeoPixelPanel` are for the board
(``machine.Pin``, ``neopixel``, imported only when built); :class:`RecordingPanel` is the
fake for the unix port: it prints every change on stdout and reads ``press`` lines from
stdin, so a test drives and watches the real panel code.
"""

import utime as time

DEBOUNCE_MS = 50


class _Button:
    """A push button to ground on a pulled-up pin, debounced: one True per press."""

    def __init__(self, pin):
        self.pin = pin
        self.was_down = False
        self.since = 0

    def pressed(self):
        down = self.pin.value() == 0
        now = time.ticks_ms()
        if down == self.was_down:
            self.since = now
            return False
        if time.ticks_diff(now, self.since) < DEBOUNCE_MS:
            return False
        self.was_down = down
        return down


class PinPanel:
    """One LED per lane on GPIO pins (active high), a buzzer on a PWM pin, a button."""

    def __init__(self, led_pins, buzzer_pin, button_pin, buzzer_hz=2400):
        from machine import PWM, Pin  # noqa: PLC0415 -- board only

        self.leds = [Pin(n, Pin.OUT, value=0) for n in led_pins]
        self.pwm = PWM(Pin(buzzer_pin))
        self.pwm.freq(buzzer_hz)
        self.pwm.duty_u16(0)
        self.button = _Button(Pin(button_pin, Pin.IN, Pin.PULL_UP))

    def set_lane(self, index, on, state):
        if index < len(self.leds):
            self.leds[index].value(1 if on else 0)

    def buzzer(self, on):
        self.pwm.duty_u16(32768 if on else 0)

    def pressed(self):
        return self.button.pressed()


#: NeoPixel colours by state, on top of the timing patterns (which alone tell states apart)
COLOURS = {
    "idle": (0, 40, 0),
    "call": (80, 40, 0),
    "acked": (0, 0, 80),
    "out_of_service": (0, 0, 0),
    "down": (40, 40, 40),
}


class NeoPixelPanel(PinPanel):
    """A NeoPixel strip, pixel i for lane i; buzzer and button as :class:`PinPanel`."""

    def __init__(self, strip_pin, lanes, buzzer_pin, button_pin, buzzer_hz=2400):
        from machine import Pin  # noqa: PLC0415 -- board only
        from neopixel import NeoPixel  # noqa: PLC0415 -- board only

        super().__init__((), buzzer_pin, button_pin, buzzer_hz)
        self.strip = NeoPixel(Pin(strip_pin), lanes)

    def set_lane(self, index, on, state):
        self.strip[index] = COLOURS[state] if on else (0, 0, 0)
        self.strip.write()


class RecordingPanel:
    """The unix-port fake: ``led <lane> <0|1> <state>``, ``buzz <0|1>`` lines on stdout
    (lanes numbered from 1), and a ``press`` line on stdin presses the button."""

    def __init__(self, out=print):
        import select  # noqa: PLC0415
        import sys  # noqa: PLC0415

        self.out = out
        self.stdin = sys.stdin
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.presses = 0

    def set_lane(self, index, on, state):
        self.out(f"led {index + 1} {1 if on else 0} {state}")

    def buzzer(self, on):
        self.out(f"buzz {1 if on else 0}")

    def pressed(self):
        if not self.poll.poll(0):
            return False
        line = self.stdin.readline()
        if line.strip() == "press":
            self.presses += 1
            return True
        return False
