"""Plays the demo's steps against a running local region and tallies what was shown.

Outcomes are observed, never assumed: the player waits for what the agent reports in its
events file (one JSON line per state change and verdict; no document numbers).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from host_tools.demo.script import OUTCOMES, Step
from host_tools.localregion import AgentProcess, LocalRegion

STEP_TIMEOUT = 30.0

Say = Callable[[str], None]


@dataclass
class Tally:
    sent: int = 0
    shown: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    resolved_late: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Player:
    """Sends each step's document through the scanner simulator and waits for the screen."""

    def __init__(
        self,
        region: LocalRegion,
        agent: AgentProcess,
        say: Say,
        before_say: Callable[[], None] | None = None,
    ):
        self.region = region
        self.agent = agent
        self._say = say
        self._before_say = before_say

    def say(self, text: str) -> None:
        """Print a line of the script, after what the kiosk has shown so far."""
        if self._before_say is not None:
            self._before_say()
        self._say(text)

    def outcome(self, mark: int, timeout: float = STEP_TIMEOUT) -> str:
        """The first final screen (clear, possible match, unknown, rescan) after ``mark``."""
        ev = self.agent.wait_event(
            lambda e: e["event"] == "state" and e["after"] in OUTCOMES and not e.get("late"),
            "the screen's answer",
            mark,
            timeout,
        )
        return str(ev["after"])

    def acknowledge(self) -> None:
        """SIGUSR1 is the agent's acknowledge (as the button is); wait until it took it."""
        mark = self.agent.events.mark()
        self.agent.signal(signal.SIGUSR1)
        self.agent.wait_event(
            lambda e: e["event"] == "state" and e["cause"] == "acknowledged",
            "the acknowledge",
            mark,
        )
        self.say("  =>  acknowledged: back to IDLE")

    def play(self, steps: Sequence[Step]) -> Tally:
        tally = Tally()
        for i, step in enumerate(steps, 1):
            self.say(f"\n== [{i}/{len(steps)}] {step.title}")
            for line in step.lines:
                self.say(f"      scan  | {line}")
            if step.note:
                self.say(f"      note  | {step.note}")
            if step.outage:
                self._broker_down()
            mark = self.agent.events.mark()
            self.agent.scanner.send(step.lines)
            tally.sent += 1
            shown = self.outcome(mark)
            tally.shown[shown] += 1
            ok = shown == step.expect
            self.say(
                f"  =>  shown: {shown.upper().replace('_', ' ')}"
                f"{'' if ok else f'   (expected {step.expect.upper()})'}"
            )
            if not ok:
                tally.failures.append(f"step {i}: showed {shown}, expected {step.expect}")
            if step.ack and shown == "possible_match":
                self.acknowledge()
            if step.outage:
                self._broker_up_and_resolve(mark, tally)
        return tally

    def _broker_down(self) -> None:
        assert self.region.broker is not None
        mark = self.agent.events.mark()
        self.region.broker.stop()
        self.say("      event | broker stopped")
        self.agent.wait_event(lambda e: e["event"] == "link" and not e["up"], "link down", mark)
        self.say("      event | the kiosk noticed: link down")

    def _broker_up_and_resolve(self, mark: int, tally: Tally) -> None:
        doc = self.agent.wait_event(lambda e: e["event"] == "document", "the scan", mark)
        self.region.start_broker()
        self.say("      event | broker back")
        ev = self.agent.wait_event(
            lambda e: e["event"] == "verdict" and e.get("seq") == doc.get("seq"),
            "the pending query's verdict",
            mark,
            STEP_TIMEOUT * 2,
        )
        late = [
            e
            for e in self.agent.events.events[mark:]
            if e["event"] == "state" and e.get("seq") == ev["seq"] and e.get("late")
        ]
        how = (
            f"its screen turns from UNKNOWN to {late[-1]['after'].upper()} (marked late)"
            if late
            else "shown as a 'pending resolved' notice under the current screen"
        )
        self.say(
            f"  =>  pending query resolved after the outage: {ev['outcome']} "
            f"(scan #{ev['seq']}: {how})"
        )
        tally.resolved_late.append(str(ev["outcome"]))
        if ev["outcome"] != "NO_MATCH":
            tally.failures.append(f"outage document resolved as {ev['outcome']}")

    def lost(self, tally: Tally) -> int:
        """Scans sent but never seen by the agent, plus accepted ones with no verdict."""
        events = self.agent.events
        events.poll()
        docs = [e for e in events.events if e["event"] == "document"]
        accepted = {e["qid"] for e in docs if e.get("valid")}
        answered = {e["qid"] for e in events.events if e["event"] == "verdict"}
        return (tally.sent - len(docs)) + len(accepted - answered)
