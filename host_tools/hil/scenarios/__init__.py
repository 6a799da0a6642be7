"""The HIL scenarios: name -> :class:`Scenario` (function, description, prerequisites)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host_tools.hil.scenarios import agent, discreet, probe
from host_tools.hil.scenarios.common import Context

REPO = Path(__file__).resolve().parents[3]
AGENT_PARTS = (
    "firmware/agent/cli.py",
    "firmware/signals",
    "hardware/systemd/fieldterm-agent.service",
    "host_tools/regional/cli.py",
)


@dataclass(frozen=True)
class Scenario:
    func: Callable[[Context], None]
    doc: str
    requires: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        """Repository paths this scenario needs that are not there."""
        return [p for p in self.requires if not (REPO / p).exists()]


SCENARIOS: dict[str, Scenario] = {
    "agent-virt": Scenario(
        agent.run_virt,
        "virt: agent under systemd, 16550 scanner, Mosquitto mTLS + regional, broker outage",
        AGENT_PARTS,
    ),
    "agent-raspi3b": Scenario(
        agent.run_raspi3b,
        "raspi3b: agent under systemd, PL011 scanner, usb-net MQTT, LED/buzzer/button via qtest",
        AGENT_PARTS,
    ),
    "discreet-raspi3b": Scenario(
        discreet.run_raspi3b,
        "raspi3b: discreet kiosk: a possible match beeps as a clear, red LED shows it",
        AGENT_PARTS,
    ),
    "probe-raspi3b": Scenario(probe.run_raspi3b, "raspi3b plumbing: PL011 in, GPIO out/in (qtest)"),
    "probe-raspi3b-usbnet": Scenario(
        probe.run_raspi3b_usbnet, "raspi3b plumbing: usb-net (dwc2) to the host's 127.0.0.1"
    ),
    "probe-virt": Scenario(probe.run_virt, "virt plumbing: 16550 in, guestfwd to 127.0.0.1"),
}


def default_scenarios() -> tuple[list[str], dict[str, list[str]]]:
    """What ``make hil`` runs, and what it cannot run (name -> missing paths).

    The agent scenarios cover the plumbing the probes check (UART, GPIO both ways,
    usb-net, guestfwd); the probes run instead when the agent's parts are not in the tree,
    and stay available with ``-s`` for narrowing a failure down.
    """
    unavailable = {n: s.missing() for n, s in SCENARIOS.items() if s.missing()}
    agents = [
        n for n in ("agent-virt", "agent-raspi3b", "discreet-raspi3b") if n not in unavailable
    ]
    if len(agents) == 3:
        return agents, unavailable
    return [*agents, "probe-virt", "probe-raspi3b", "probe-raspi3b-usbnet"], unavailable
