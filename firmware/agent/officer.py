"""What the officer sees and presses: the agent's view rendered on the signals port.

:class:`OfficerSignals` puts a :class:`~firmware.agent.states.View` on the LED/buzzer panel
(pattern by state) and the display (a screen from the message catalogue, in the
terminal's language), and reads the acknowledge button. The signal backends come from
:mod:`firmware.signals` (GPIO, mock, console); this module never branches on which one.

An acknowledgement can also come from ``SIGUSR1`` (``systemctl kill -s USR1
fieldterm-agent``, and the demo): :meth:`OfficerSignals.request_ack` sets a flag that the
agent's loop reads like a button press.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from firmware.agent.states import View

log = logging.getLogger(__name__)


def view_details(view: View) -> dict[str, Any]:
    """The details a screen may show: scan number, reason, lateness, pending, notices, and
    the offline list (the age of the list behind an offline answer; the installed list's
    version and age for the idle screen; "cleared online")."""
    details: dict[str, Any] = {
        "seq": view.seq,
        "reason": view.reason,
        "late": view.late,
        "pending": view.pending,
        "notices": tuple((n.seq, n.state) for n in view.notices),
        "cleared": view.cleared,
    }
    if view.supervisor:
        details["supervisor"] = True
    if view.offline is not None:
        details["answer_age_h"] = view.offline.list_age_s / 3600.0
        details["list_version"] = view.offline.list_version
    elif view.offline_list is not None:
        details["list_version"] = view.offline_list.version
        details["list_age_h"] = view.offline_list.age_h
        details["list_usable"] = view.offline_list.usable
    if view.clock_offset_s is not None:
        details["clock_offset_s"] = view.clock_offset_s
    return details


class OfficerSignals:
    """LED/buzzer panel + display + button as one port of the agent."""

    def __init__(
        self,
        panel: Any,
        display: Any,
        button: Any | None,
        *,
        language: str = "en",
        render: Callable[..., Any] | None = None,
    ):
        self.panel = panel
        self.display = display
        self.button = button
        self.language = language
        self._render = render
        self._accepts: set[str] | None = None
        if render is not None:
            params = inspect.signature(render).parameters.values()
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                self._accepts = {p.name for p in inspect.signature(render).parameters.values()}
        self._ack = threading.Event()
        self._closed = False

    def request_ack(self) -> None:
        """An acknowledgement from outside the button (a signal handler may call this)."""
        self._ack.set()

    def show(self, view: View, now: float) -> None:
        self.panel.show(view.screen, now)
        if self.display is not None and self._render is not None:
            details = view_details(view)
            if self._accepts is not None:
                details = {k: v for k, v in details.items() if k in self._accepts}
            try:
                screen = self._render(view.screen, self.language, **details)
                self.display.show(screen)
            except Exception:
                log.exception("display update failed")

    def update(self, now: float) -> None:
        self.panel.update(now)

    def acknowledged(self) -> bool:
        pressed = False
        if self.button is not None:
            try:
                pressed = bool(self.button.pressed())
            except Exception:
                log.exception("button read failed")
        if self._ack.is_set():
            self._ack.clear()
            pressed = True
        return pressed

    def off(self) -> None:
        """Everything dark and silent (SIGTERM, shutdown). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for part, name in (
            (self.panel, "off"),
            (self.panel, "close"),
            (self.display, "close"),
            (self.button, "close"),
        ):
            fn = getattr(part, name, None) if part is not None else None
            if fn is not None:
                try:
                    fn()
                except Exception:
                    log.exception("signals %s failed", name)
