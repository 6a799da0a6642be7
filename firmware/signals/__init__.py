"""What the officer sees, hears and presses: LED/buzzer panel, display, acknowledge button.

Each is a port with backends chosen by one config value from a table
(:mod:`firmware.signals.backends`): ``signals.backend`` = ``gpio``, ``console``, ``mock``
for the panel and button; ``signals.display`` = ``ssd1306``/``sh1106``, ``console``,
``mock``, ``none``. Hardware libraries load only inside their backend, and a hardware
backend that cannot load is a startup error, never a silent fall-back to a mock.

The names below are imported on first use, so importing a submodule (the ``signals``
command's registration, the agent's config) does not load the whole package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.signals.backends import open_button, open_display, open_panel
    from firmware.signals.base import SignalDriver, SignalPanel
    from firmware.signals.catalogue import text
    from firmware.signals.display import Display, Screen, render_screen
    from firmware.signals.patterns import PATTERNS, STATES
    from firmware.signals.pins import Pins

#: public name -> the submodule that defines it
_HOMES = {
    "open_button": "backends",
    "open_display": "backends",
    "open_panel": "backends",
    "SignalDriver": "base",
    "SignalPanel": "base",
    "text": "catalogue",
    "Display": "display",
    "Screen": "display",
    "render_screen": "display",
    "PATTERNS": "patterns",
    "STATES": "patterns",
    "Pins": "pins",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
