"""Recording fakes of the agent core's ports: the query client (``submit``) and the
officer's signals (``show``, ``update``, ``acknowledged``, ``off``).

They keep the interfaces of the real :class:`firmware.client.client.QueryClient` and
:class:`firmware.agent.officer.OfficerSignals` (tests/test_fake_contracts.py checks the
signatures and runs one behavioural suite against fake and real), and verdicts are the real
:class:`~firmware.client.client.Verdict`.
"""

from __future__ import annotations

from typing import Any

from firmware.client.client import Verdict


class FakeQuery:
    """Records what was sent; the test answers with :meth:`answer` (a test-only helper)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []  # (query_id, key)
        self.callbacks: dict[bytes, Any] = {}

    def submit(self, query_id: bytes, dk: Any, on_verdict: Any, timeout: float | None = None):
        self.sent.append((query_id, dk))
        self.callbacks[query_id] = on_verdict

    def answer(self, query_id: bytes, outcome: str, **kw: Any) -> None:
        kw.setdefault("list_version", 7)
        kw.setdefault("latency_s", 0.01)
        self.callbacks[query_id](Verdict(query_id, outcome, **kw))


class FakeSignals:
    """Records the distinct screens shown; ``ack = True`` is the officer's button press."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.ack = False

    def show(self, view: Any, now: float) -> None:
        if not self.shown or self.shown[-1] != view.screen:
            self.shown.append(view.screen)

    def update(self, now: float) -> None:
        pass

    def acknowledged(self) -> bool:
        a, self.ack = self.ack, False
        return a

    def off(self) -> None:
        if not self.shown or self.shown[-1] != "off":
            self.shown.append("off")
