"""The kiosk unit keeps the agent's memory off the card: no core dumps, no swap."""

from __future__ import annotations

from pathlib import Path

from tests.hardware.test_hardware_files import _unit_settings

UNIT = Path(__file__).resolve().parents[2] / "hardware" / "systemd" / "fieldterm-agent.service"


def test_agent_unit_disables_core_dumps_and_swap():
    unit = _unit_settings(UNIT)
    assert unit["LimitCORE"] == ["0"]  # systemd-coredump and file core patterns both obey it
    assert unit["MemorySwapMax"] == ["0"]  # plain keys in memory never reach a swap file
    assert unit["StateDirectoryMode"] == ["0700"] and unit["UMask"] == ["0077"]
