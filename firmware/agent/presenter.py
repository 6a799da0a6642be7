"""Presenting state changes: the signals show each new view once, and every transition
goes to the log and the events file.

The log and the events file get scan numbers, query ids, states and causes: never MRZ
text or document numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from firmware.agent.events import EventLog
from firmware.agent.ports import SignalsPort
from firmware.agent.states import OFFLINE_MATCH, POSSIBLE_MATCH, Transition, View

log = logging.getLogger(__name__)


class StatePresenter:
    """Turns transitions into log lines and ``state`` events, and views into signals."""

    def __init__(
        self,
        signals: SignalsPort,
        events: EventLog,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.signals = signals
        self._events = events
        self._clock = clock
        self._shown: View | None = None

    def note(self, t: Transition | None, reason: str | None = None) -> bool:
        """Log and record ``t`` (nothing if None); whether the screen state changed.
        ``reason`` is the machine's reason for the state it is in now."""
        if t is None:
            return False
        log.info(
            "%s -> %s (%s)%s%s",
            t.before,
            t.after,
            t.cause,
            f" scan #{t.seq}" if t.seq is not None else "",
            " late" if t.late else "",
        )
        self._events.write(
            "state",
            before=t.before,
            after=t.after,
            cause=t.cause,
            seq=t.seq,
            qid=t.query_id.hex() if t.query_id else None,
            late=t.late,
            reason=reason,
        )
        if t.after == POSSIBLE_MATCH and t.before != POSSIBLE_MATCH:
            log.warning("POSSIBLE MATCH on scan #%s: hold the document", t.seq)
        elif t.after == OFFLINE_MATCH:
            log.warning(
                "POSSIBLE MATCH (offline list) on scan #%s: hold the document; "
                "re-checked online when the link returns",
                t.seq,
            )
        return t.after != t.before

    def render(self, view: View, *, force: bool = False) -> None:
        """Show ``view`` on the signals if it differs from the last one shown (or ``force``)."""
        if force or view != self._shown:
            self._shown = view
            self.signals.show(view, self._clock())
