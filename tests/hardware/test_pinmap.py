"""hardware/pinmap.toml is the single source of the firmware's default pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from firmware.errors import ConfigError
from firmware.signals.pins import Pins

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_pinmap_is_the_hardware_pinmap():
    hw = (ROOT / "hardware/pinmap.toml").read_text()
    pkg = (ROOT / "firmware/signals/pinmap.toml").read_text()
    assert hw == pkg


def test_defaults_come_from_pinmap_and_are_distinct():
    data = tomllib.loads((ROOT / "hardware/pinmap.toml").read_text())
    pins = Pins.defaults().as_dict()
    assert pins == {name: data["signals"][name]["bcm"] for name in pins}
    used = set(pins.values()) | {14, 15, 2, 3}
    assert len(used) == len(pins) + 4  # no clash with UART or I2C


def test_example_config_agrees_with_pinmap():
    example = tomllib.loads((ROOT / "hardware/terminal.example.toml").read_text())
    assert example["signals"]["pins"] == Pins.defaults().as_dict()


def test_pin_overrides_are_validated_with_the_field_name():
    assert Pins.with_overrides({"red": 5}).red == 5
    for bad in ({"red": 40}, {"red": "22"}, {"red": True}, {"violet": 5}, {"red": 17}):
        with pytest.raises(ConfigError) as err:
            Pins.with_overrides(bad)
        assert "signals.pins" in str(err.value) or "signals.pins" in getattr(err.value, "field", "")
