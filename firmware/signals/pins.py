"""Signal pins (BCM numbers): defaults from the packaged pin map, overridden by config."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from firmware.errors import ConfigError

# read next to this file, as firmware.signals.catalogue reads messages.toml
_PINMAP = Path(__file__).with_name("pinmap.toml")


@dataclass(frozen=True)
class Pins:
    """BCM GPIO numbers of the signal outputs and the button (frozen, all distinct)."""

    green: int
    amber: int
    red: int
    buzzer: int
    button: int

    @classmethod
    def defaults(cls) -> Pins:
        data = tomllib.loads(_PINMAP.read_text("utf-8"))
        return cls(**{f.name: int(data["signals"][f.name]["bcm"]) for f in fields(cls)})

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, int] | None = None) -> Pins:
        """Defaults with some pins replaced (``[signals.pins]`` of terminal.toml)."""
        values = {f.name: getattr(cls.defaults(), f.name) for f in fields(cls)}
        for name, pin in (overrides or {}).items():
            if name not in values:
                raise ConfigError(f"unknown pin name {name!r}", field=f"signals.pins.{name}")
            if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= 27:
                raise ConfigError(
                    f"expected a BCM GPIO number 0-27, got {pin!r}", field=f"signals.pins.{name}"
                )
            values[name] = pin
        if len(set(values.values())) != len(values):
            raise ConfigError("two signals share one pin", field="signals.pins")
        return cls(**values)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
