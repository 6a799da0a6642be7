"""The agent core's ports: the small interfaces of what it drives.

The real implementations are :class:`firmware.client.client.QueryClient`,
:class:`firmware.agent.officer.OfficerSignals` and
:class:`firmware.agent.status.StatusPublisher` and
:class:`firmware.offline.answerer.OfflineAnswerer`; tests pass recording fakes, and
tests/agent/test_ports.py checks that both sides still match these signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from firmware.agent.states import View


class QueryPort(Protocol):
    """The sealed-query client as the agent uses it."""

    def submit(self, query_id: bytes, dk: Any, on_verdict: Callable[[Any], None]) -> None: ...


class SignalsPort(Protocol):
    """LEDs, buzzer and display together: show a :class:`View`, animate, switch off."""

    def show(self, view: View, now: float) -> None: ...

    def update(self, now: float) -> None: ...

    def acknowledged(self) -> bool: ...

    def off(self) -> None: ...


class StatusPort(Protocol):
    """The retained status topic: publish one status document."""

    def publish(self, info: dict[str, Any]) -> None: ...


class OfflinePort(Protocol):
    """The offline list's answerer: one answer per document key, and its health."""

    def answer(self, dk: Any) -> Any: ...

    def status(self) -> dict[str, Any]: ...
