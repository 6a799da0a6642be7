"""Plays the demo's script against a running local region and tallies what was shown.

Outcomes are observed, never assumed: the player waits for what the agent reports in its
events file (one JSON line per state change, verdict, offline answer and list install; no
document numbers).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from host_tools.demo.panel import DemoPanel
from host_tools.demo.script import OFFLINE_OUTCOMES, OUTCOMES, Step
from host_tools.localregion import AgentProcess, LocalRegion, LocalRegionError

STEP_TIMEOUT = 30.0
#: How long the panel may take to follow the kiosk: a lane frame every 2 s, "down" after
#: 5.5 s without one.
PANEL_TIMEOUT = 8.0
CALLS = ("possible_match", "possible_match_offline")

Say = Callable[[str], None]


@dataclass
class Tally:
    sent: int = 0
    shown: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    resolved_late: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def offline(self) -> int:
        """Scans answered from the kiosk's offline list."""
        return sum(self.shown[k] for k in OFFLINE_OUTCOMES)


def _words(state: str) -> str:
    return {
        "possible_match_offline": "POSSIBLE MATCH (offline list)",
        "not_listed": "NOT LISTED (offline list)",
    }.get(state, state.upper().replace("_", " "))


class Player:
    """Sends each step's document through the scanner simulator and waits for the screen."""

    def __init__(
        self,
        region: LocalRegion,
        agent: AgentProcess,
        say: Say,
        before_say: Callable[[], None] | None = None,
        panel: DemoPanel | None = None,
    ):
        self.region = region
        self.agent = agent
        self._say = say
        self._before_say = before_say
        self.panel = panel
        self.broker_is_down = False
        self.tally = Tally()

    def say(self, text: str) -> None:
        """Print a line of the script, after what the kiosk has shown so far."""
        if self._before_say is not None:
            self._before_say()
        self._say(text)

    # -- observing the agent -------------------------------------------------------------
    def outcome(self, mark: int, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """The first answer on screen (a state event of OUTCOMES, not a late one) after
        ``mark``."""
        return self.agent.wait_event(
            lambda e: e["event"] == "state" and e["after"] in OUTCOMES and not e.get("late"),
            "the screen's answer",
            mark,
            timeout,
        )

    def acknowledge(self) -> None:
        """SIGUSR1 is the agent's acknowledge (as the button is); wait until it took it."""
        mark = self.agent.events.mark()
        self.agent.signal(signal.SIGUSR1)
        self.agent.wait_event(
            lambda e: e["event"] == "state" and e["cause"] == "acknowledged",
            "the acknowledge",
            mark,
        )
        self.say("  =>  acknowledged")

    def verdict_for(self, seq: int, mark: int, timeout: float = STEP_TIMEOUT * 2) -> dict[str, Any]:
        return self.agent.wait_event(
            lambda e: e["event"] == "verdict" and e.get("seq") == seq,
            f"the online verdict of scan #{seq}",
            mark,
            timeout,
        )

    def wait_list(self, mark: int, timeout: float = STEP_TIMEOUT * 2) -> dict[str, Any]:
        """The kiosk installed an offline list (its ``list`` event)."""
        return self.agent.wait_event(
            lambda e: e["event"] == "list" and e.get("list_version") is not None,
            "the kiosk's offline list",
            mark,
            timeout,
        )

    # -- the supervisor's panel ------------------------------------------------------------
    def show_panel(self, shown: str, timeout: float = PANEL_TIMEOUT) -> None:
        """Wait until the panel's lane follows what the kiosk shows (a call for a latched
        possible match, idle otherwise, down while the broker is), and print it."""
        self.show_panel_state(self.lane_for(shown), timeout)

    def lane_for(self, shown: str) -> str:
        """What the panel's lane must show for the kiosk's screen ``shown``."""
        return "down" if self.broker_is_down else "call" if shown in CALLS else "idle"

    def supervisor_acknowledges(self) -> None:
        """The supervisor presses the panel's button: the lane shows acked and the kiosk
        gets the acknowledgement ("supervisor on the way")."""
        assert self.panel is not None
        mark = self.agent.events.mark()
        self.say("      panel | the supervisor presses acknowledge on the panel")
        self.panel.press()
        try:
            ev = self.agent.wait_event(
                lambda e: e["event"] == "supervisor", "the panel's acknowledgement", mark, 10
            )
            self.say(f"  =>  the kiosk adds: supervisor on the way ({ev.get('panel')})")
        except LocalRegionError as exc:
            self.tally.failures.append(str(exc))
        self.show_panel_state("acked")

    def show_panel_state(self, want: str, timeout: float = PANEL_TIMEOUT) -> None:
        """Wait (bounded) until the panel's lane shows ``want``, then print its lights; a
        panel that does not follow is a failure of the demo."""
        line = self.panel_line(want, timeout)
        if line is not None:
            self.say(line)

    def panel_line(self, want: str, timeout: float = PANEL_TIMEOUT) -> str | None:
        """The panel's lane once it shows ``want`` (bounded wait), or None without a panel."""
        if self.panel is None:
            return None
        if not self.panel.wait(want, timeout):
            self.tally.failures.append(f"panel showed {self.panel.state(1)}, not {want}")
        return f"      panel | {self.panel.view()}"

    # -- playing -------------------------------------------------------------------------
    def play_step(self, step: Step, number: str) -> dict[str, Any]:
        """One scan: returns the screen's answer event (its ``seq`` is the scan's number)."""
        t = self.tally
        self.say(f"\n== [{number}] {step.title}")
        for line in step.lines:
            self.say(f"      scan  | {line}")
        if step.note:
            self.say(f"      note  | {step.note}")
        mark = self.agent.events.mark()
        self.agent.scanner.send(step.lines)
        t.sent += 1
        ev = self.outcome(mark)
        shown = str(ev["after"])
        t.shown[shown] += 1
        ok = shown == step.expect
        extra = ""
        if shown in OFFLINE_OUTCOMES:
            off = self._offline_event(mark)
            if off is not None and off.get("list_age_s") is not None:
                extra = f" (list {float(off['list_age_s']) / 3600:.1f} h old)"
        self.say(
            f"  =>  shown: {_words(shown)}{extra}"
            f"{'' if ok else f'   (expected {_words(step.expect)})'}"
        )
        if not ok:
            t.failures.append(f"{number}: showed {shown}, expected {step.expect}")
        self.show_panel(shown)
        if step.ack and shown in CALLS:
            if self.panel is not None and not self.broker_is_down:
                self.supervisor_acknowledges()
            self.acknowledge()
            self.show_panel("idle")
        return ev

    def _offline_event(self, mark: int) -> dict[str, Any] | None:
        found = [e for e in self.agent.events.events[mark:] if e["event"] == "offline"]
        return found[-1] if found else None

    def play(self, steps: Sequence[Step], first: int, total: int) -> None:
        for i, step in enumerate(steps, first):
            self.play_step(step, f"{i}/{total}")

    def resolve_late(self, seq: int, mark: int, expect: str) -> dict[str, Any]:
        """Wait for scan ``seq``'s online verdict; report it, and acknowledge a late hit."""
        ev = self.verdict_for(seq, mark)
        self.tally.resolved_late.append(str(ev["outcome"]))
        how = ""
        if ev.get("offline_answer"):
            how = f" (answered {ev['offline_answer'].replace('_', ' ')} offline before)"
        self.say(f"  =>  scan #{seq} re-checked online: {ev['outcome']}{how}")
        if ev["outcome"] != expect:
            self.tally.failures.append(f"scan #{seq} resolved as {ev['outcome']}, not {expect}")
        if ev["outcome"] == "POSSIBLE_MATCH":
            self.acknowledge()  # the late hit latches until the officer acknowledges it
        return ev

    def broker_down(self) -> None:
        assert self.region.broker is not None
        mark = self.agent.events.mark()
        self.region.broker.stop()
        self.broker_is_down = True
        self.say("      event | broker stopped")
        self.agent.wait_event(lambda e: e["event"] == "link" and not e["up"], "link down", mark)
        self.say("      event | the kiosk noticed: link down; it answers from its offline list")

    def broker_up(self) -> None:
        self.region.start_broker()
        self.broker_is_down = False
        self.say("      event | broker back")

    def lost(self) -> int:
        """Scans sent but never seen by the agent, plus accepted ones with no verdict."""
        events = self.agent.events
        events.poll()
        docs = [e for e in events.events if e["event"] == "document"]
        accepted = {e["qid"] for e in docs if e.get("valid")}
        answered = {e["qid"] for e in events.events if e["event"] == "verdict"}
        return (self.tally.sent - len(docs)) + len(accepted - answered)

    def online_hits(self) -> int:
        """Online POSSIBLE_MATCH verdicts: what the alert desk must have been sent."""
        self.agent.events.poll()
        return sum(
            1
            for e in self.agent.events.events
            if e["event"] == "verdict" and e.get("outcome") == "POSSIBLE_MATCH"
        )
