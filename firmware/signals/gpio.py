"""LEDs and buzzer on GPIO through the RPi.GPIO API (``rpi-lgpio`` provides it on a Pi 5).

The library is imported here and only when a GPIO backend is opened, so laptops, CI and
the regional server never need it. If it cannot load, that is a clear startup error:
there is no fall-back to a mock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from firmware.errors import SetupError
from firmware.signals.base import SignalPanel

if TYPE_CHECKING:
    from firmware.signals.pins import Pins


def load_gpio() -> Any:
    """Import RPi.GPIO and select BCM numbering, or raise a SetupError that says what to do."""
    try:
        from RPi import GPIO  # noqa: PLC0415
    except (ImportError, RuntimeError) as exc:
        raise SetupError(
            "signals.backend = 'gpio' but RPi.GPIO cannot be loaded "
            f"({exc}). On a Raspberry Pi install the 'pi' extra (pip install 'fieldterm[pi]', "
            "which brings rpi-lgpio) and check that /dev/gpiochip0 exists and the service "
            "user is in the 'gpio' group; elsewhere use backend 'console' or 'mock'."
        ) from exc
    GPIO.setwarnings(False)
    GPIO.setmode(GPIO.BCM)
    return GPIO


class GpioPanel(SignalPanel):
    """Each channel is one output pin, active high (LED through a resistor, buzzer via an NPN)."""

    def __init__(self, pins: Mapping[str, int], *, buzzer: bool = True) -> None:
        super().__init__(buzzer=buzzer)
        self._gpio = load_gpio()
        self._pins = {ch: pins[ch] for ch in self.channels}
        for pin in self._pins.values():
            self._gpio.setup(pin, self._gpio.OUT, initial=self._gpio.LOW)

    @classmethod
    def from_config(
        cls, pins: Pins, clock: Callable[[], float] | None, *, buzzer: bool = True
    ) -> Self:
        return cls(pins.as_dict(), buzzer=buzzer)

    def _set(self, channel: str, on: bool) -> None:
        self._gpio.output(self._pins[channel], self._gpio.HIGH if on else self._gpio.LOW)

    def _close(self) -> None:
        self._gpio.cleanup(list(self._pins.values()))
