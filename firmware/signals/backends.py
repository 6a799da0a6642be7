"""Which LED/buzzer panel, acknowledge button and display to open, chosen by config.

One table per config key, as python-can chooses its buses: each name maps to
``"module:Class"``, and the module is imported only when that backend is chosen, so
RPi.GPIO and luma.oled load only on a kiosk that uses them. ``signals.backend`` picks the
panel and the button (:data:`PANELS`, :data:`BUTTONS`, the same names), ``signals.display``
the display (:data:`DISPLAYS`). Every backend class opens itself from the same arguments
(``from_config``), taking what it needs, so the code that opens one never asks which it is.
A hardware backend that cannot load is a :class:`~firmware.errors.SetupError`, never a
silent fall-back to a mock; an unknown name is a :class:`~firmware.errors.ConfigError`
naming the key and the known names.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from firmware.backend_table import BackendTable

if TYPE_CHECKING:
    from firmware.signals.base import SignalPanel
    from firmware.signals.button import Button
    from firmware.signals.display import Display
    from firmware.signals.pins import Pins

#: ``signals.backend`` -> the LED/buzzer panel.
PANELS: BackendTable[type[SignalPanel]] = BackendTable(
    "signals.backend",
    {
        "gpio": "firmware.signals.gpio:GpioPanel",
        "console": "firmware.signals.console:ConsolePanel",
        "mock": "firmware.signals.mock:MockPanel",
    },
)
#: ``signals.backend`` -> the acknowledge button of that backend.
BUTTONS: BackendTable[type[Button]] = BackendTable(
    "signals.backend",
    {
        "gpio": "firmware.signals.button:GpioButton",
        "console": "firmware.signals.button:ConsoleButton",
        "mock": "firmware.signals.mock:MockButton",
    },
)
#: ``signals.display`` -> the display.
DISPLAYS: BackendTable[type[Display]] = BackendTable(
    "signals.display",
    {
        "ssd1306": "firmware.signals.display:OledDisplay",
        "sh1106": "firmware.signals.display:OledDisplay",
        "console": "firmware.signals.display:ConsoleDisplay",
        "mock": "firmware.signals.display:MockDisplay",
        "none": "firmware.signals.display:NoDisplay",
    },
)


def _pins(pins: Pins | Mapping[str, int] | None) -> Pins:
    from firmware.signals.pins import Pins  # noqa: PLC0415

    return pins if isinstance(pins, Pins) else Pins.with_overrides(pins)


def open_panel(
    backend: str,
    pins: Pins | Mapping[str, int] | None = None,
    clock: Callable[[], float] | None = None,
    *,
    buzzer: bool = True,
) -> SignalPanel:
    """The LED/buzzer panel named by ``signals.backend`` (see :data:`PANELS`)."""
    return PANELS.load(backend).from_config(_pins(pins), clock, buzzer=buzzer)


def open_button(
    backend: str,
    pins: Pins | Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Button:
    """The acknowledge button named by ``signals.backend`` (see :data:`BUTTONS`):
    ``pressed()`` is True once per press."""
    return BUTTONS.load(backend).from_config(_pins(pins), clock)


def open_display(
    backend: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    bus: int = 1,
    address: int = 0x3C,
    font: str | None = None,
) -> Display:
    """The display named by ``signals.display`` (see :data:`DISPLAYS`). Each backend takes
    what it needs: the I2C OLEDs ``bus``, ``address`` and ``font`` (a TTF with Cyrillic),
    (default DejaVu Sans), the recording mock ``clock``; ``none`` draws nothing."""
    from firmware.signals.display import DisplayOptions  # noqa: PLC0415

    options = DisplayOptions(clock=clock, bus=bus, address=address)
    if font is not None:
        options = dataclasses.replace(options, font=font)
    return DISPLAYS.load(backend).from_config(backend, options)
