"""What the officer sees, hears and presses: LED/buzzer panel, display, acknowledge button.

Each is a port with backends chosen by name (``gpio``, ``console``, ``mock``; displays
``ssd1306``/``sh1106``, ``console``, ``mock``, ``none``). Hardware libraries load only
inside their backend, and a hardware backend that cannot load is a startup error, never a
silent fall-back to a mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from firmware.errors import ConfigError
from firmware.signals.base import SignalDriver, SignalPanel
from firmware.signals.catalogue import text
from firmware.signals.display import Display, Screen, render_screen
from firmware.signals.patterns import PATTERNS, STATES
from firmware.signals.pins import Pins

__all__ = [
    "PATTERNS",
    "STATES",
    "Display",
    "Pins",
    "Screen",
    "SignalDriver",
    "SignalPanel",
    "open_button",
    "open_display",
    "open_panel",
    "render_screen",
    "text",
]


def _pins(pins: Pins | Mapping[str, int] | None) -> Pins:
    return pins if isinstance(pins, Pins) else Pins.with_overrides(pins)


def open_panel(
    backend: str,
    pins: Pins | Mapping[str, int] | None = None,
    clock: Callable[[], float] | None = None,
    *,
    buzzer: bool = True,
) -> SignalPanel:
    """The LED/buzzer panel for ``backend`` (gpio, console, mock)."""
    if backend == "gpio":
        from firmware.signals.gpio import GpioPanel  # noqa: PLC0415

        return GpioPanel(_pins(pins).as_dict(), buzzer=buzzer)
    if backend == "console":
        from firmware.signals.console import ConsolePanel  # noqa: PLC0415

        return ConsolePanel(buzzer=buzzer)
    if backend == "mock":
        from firmware.signals.mock import MockPanel  # noqa: PLC0415

        return MockPanel(buzzer=buzzer)
    raise ConfigError(f"unknown signals backend {backend!r}", field="signals.backend")


def open_display(backend: str, **opts: Any) -> Display | None:
    """The display for ``backend`` (ssd1306, sh1106, console, mock, none -> None)."""
    if backend == "none":
        return None
    if backend in {"ssd1306", "sh1106"}:
        from firmware.signals.display import OledDisplay  # noqa: PLC0415

        return OledDisplay(backend, **opts)
    if backend == "console":
        from firmware.signals.display import ConsoleDisplay  # noqa: PLC0415

        return ConsoleDisplay()
    if backend == "mock":
        from firmware.signals.display import MockDisplay  # noqa: PLC0415

        return MockDisplay(opts.get("clock", time.monotonic))
    raise ConfigError(f"unknown display backend {backend!r}", field="signals.display")


def open_button(
    backend: str,
    pins: Pins | Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """The acknowledge button for ``backend``: ``pressed()`` is True once per press."""
    if backend == "gpio":
        from firmware.signals.button import GpioButton  # noqa: PLC0415

        return GpioButton(_pins(pins).button, clock)
    if backend == "console":
        from firmware.signals.button import ConsoleButton  # noqa: PLC0415

        return ConsoleButton()
    if backend == "mock":
        from firmware.signals.mock import MockButton  # noqa: PLC0415

        return MockButton(clock)
    raise ConfigError(f"unknown signals backend {backend!r}", field="signals.backend")
