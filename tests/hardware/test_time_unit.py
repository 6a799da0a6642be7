"""The agent's unit starts after the clock is as good as systemd can make it, and never
waits for a synchronisation that a post without NTP will not get."""

from __future__ import annotations

from tests.hardware.test_hardware_files import HW, _unit_settings


def test_agent_unit_orders_after_time_set_and_time_sync():
    unit = _unit_settings(HW / "systemd" / "fieldterm-agent.service")
    after = " ".join(unit["After"]).split()
    assert {"time-set.target", "time-sync.target"} <= set(after)
    assert "time-sync.target" in " ".join(unit["Wants"]).split()
    # ordering only: no Requires= on time sync, so no NTP means a start with the saved clock
    assert not any("time-" in v for v in unit.get("Requires", []) + unit.get("BindsTo", []))
