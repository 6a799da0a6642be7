"""The agent's inbox: events from any thread, handled in the one thread that drains it.

The scanner reader, the MQTT network loop, the button and signal handlers only
:meth:`EventInbox.post`; the core's thread calls :meth:`EventInbox.drain`, so the state
machine, the outbox and the signals are only ever touched from that thread.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What the core handles; ``stop`` ends the drain instead.
KINDS = ("document", "verdict", "link", "ack", "list", "stop")


@dataclass(frozen=True)
class AgentEvent:
    """One posted event: ``kind`` (see :data:`KINDS`) and its value."""

    kind: str
    value: Any = None


class EventInbox:
    """A thread-safe FIFO of :class:`AgentEvent`."""

    def __init__(self) -> None:
        self._q: queue.Queue[AgentEvent] = queue.Queue()

    def post(self, kind: str, value: Any = None) -> None:
        """Queue an event (safe from any thread)."""
        self._q.put(AgentEvent(kind, value))

    def drain(self, handle: Callable[[AgentEvent], None], timeout: float) -> bool:
        """Wait up to ``timeout`` for a first event, then ``handle`` each queued event in
        order. False as soon as a ``stop`` is reached (the events after it stay queued)."""
        try:
            ev: AgentEvent | None = self._q.get(timeout=timeout)
        except queue.Empty:
            return True
        while ev is not None:
            if ev.kind == "stop":
                return False
            handle(ev)
            try:
                ev = self._q.get_nowait()
            except queue.Empty:
                ev = None
        return True
