"""The kiosk's BCM pin numbers as the HIL observes them, from the hardware pin map.

``hardware/pinmap.toml`` is the single source of the firmware's default pins; until it
exists, the ``[signals.pins]`` table of ``hardware/terminal.example.toml`` is used.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
NAMES = ("green", "amber", "red", "buzzer", "button")


def _find(doc: Mapping[str, Any]) -> dict[str, int] | None:
    """The first table (depth-first) that names every signal with an integer or {bcm=N}."""
    found: dict[str, int] = {}
    for name in NAMES:
        value = doc.get(name)
        if isinstance(value, Mapping):
            value = value.get("bcm", value.get("gpio"))
        if isinstance(value, int) and not isinstance(value, bool):
            found[name] = value
    if len(found) == len(NAMES):
        return found
    for value in doc.values():
        if isinstance(value, Mapping):
            sub = _find(value)
            if sub:
                return sub
    return None


def kiosk_pins(repo: Path = REPO) -> dict[str, int]:
    """``{"green": 17, ...}`` for the five signal pins."""
    for rel in ("hardware/pinmap.toml", "hardware/terminal.example.toml"):
        path = repo / rel
        if path.exists():
            pins = _find(tomllib.loads(path.read_text()))
            if pins:
                return pins
    raise ConfigError("no table naming green, amber, red, buzzer and button", source="hardware/")
