"""End-to-end rig: the agent in-process (so recorded signals are inspectable), a real
Mosquitto, a pty scanner simulator, and recording LED/display backends."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Clock:
    """Monotonic time (the agent needs real time for MQTT); recorded with each event."""

    def __call__(self) -> float:
        return time.monotonic()


def shown(panel: Any) -> list[str]:
    """Distinct consecutive states a mock signal panel was told to show."""
    out: list[str] = []
    for _, state in panel.states:
        if not out or out[-1] != state:
            out.append(state)
    return out


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    """Poll ``pred`` (bounded); returns its first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_history(
    history: Callable[[], list[Any]], expected: list[Any], timeout: float = 20.0, what: str = ""
) -> list[Any]:
    """Wait (bounded) until a recorded ``history`` has grown to ``expected`` and assert that
    it is exactly that, from the start: a transient state (CLEAR for ``result_hold`` s) cannot
    be missed by polling, and a history that leaves ``expected`` fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        seen = history()
        if seen[: len(expected)] != expected[: len(seen)]:
            raise AssertionError(f"{what or 'history'}: {seen} is not on the way to {expected}")
        if len(seen) >= len(expected):
            assert seen == expected, f"{what or 'history'}: {seen} went past {expected}"
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what or expected}: {seen}")
        time.sleep(0.02)


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class AgentThread:
    """Run ``agent.run()`` in a thread; ``stop()`` ends it and closes the agent."""

    def __init__(self, agent: Any):
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, name="agent", daemon=True)

    def __enter__(self) -> AgentThread:
        self.agent.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.agent.request_stop()
        self.thread.join(10)
        self.agent.close()


def screen(agent: Any, mark: int) -> dict[str, Any]:
    """The agent's next ``state`` event after ``mark`` that puts an answer on screen."""
    return dict(
        agent.wait_event(
            lambda e: e["event"] == "state" and e["after"] not in ("reading", "querying", "idle"),
            "the answer on screen",
            mark,
        )
    )


def acknowledge(agent: Any) -> None:
    """Press the acknowledge button (SIGUSR1) and wait for the agent to take it."""
    mark = agent.events.mark()
    agent.signal(signal.SIGUSR1)
    agent.wait_event(lambda e: e.get("cause") == "acknowledged", "the acknowledge", mark)
