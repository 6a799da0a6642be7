"""``make demo ARGS=--interactive``: a small shell over the running demo region.

Type MRZ lines; a blank line (or the last line of a complete document) sends them to the
simulated scanner. ``ack`` acknowledges a possible match, ``press`` is the supervisor's
button on the annunciator panel, ``status`` shows the kiosk's last answer, the panel's
lane and the regional's counters, ``quit`` ends. After each answer the panel's lane
light and chime are printed as it follows the kiosk.
"""

from __future__ import annotations

import cmd
import signal
from typing import IO

from host_tools.demo.player import Player
from host_tools.localregion import LocalRegionError


class DemoConsole(cmd.Cmd):
    intro = (
        "\n== interactive: type MRZ lines (a blank line sends them), 'ack', 'press' (the "
        "panel's button), 'status', or 'quit'"
    )
    prompt = "mrz> "

    def __init__(self, player: Player, stdin: IO[str] | None = None, stdout: IO[str] | None = None):
        super().__init__(stdin=stdin, stdout=stdout)
        if stdin is not None:
            self.use_rawinput = False
        self.player = player
        self.lines: list[str] = []

    def _print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def default(self, line: str) -> None:
        self.lines.append(line.strip())
        first = self.lines[0]
        complete = (len(self.lines) == 2 and len(first) >= 36) or len(self.lines) == 3
        if complete:
            self._send()

    def emptyline(self) -> bool:
        if self.lines:
            self._send()
        return False

    def _send(self) -> None:
        lines, self.lines = self.lines, []
        mark = self.player.agent.events.mark()
        self.player.agent.scanner.send(lines)
        try:
            shown = str(self.player.outcome(mark, 8.0)["after"])
            self._print(f"  =>  shown: {shown.upper().replace('_', ' ')}")
        except LocalRegionError:
            self._print("  =>  no answer yet (a possible match waiting to be acknowledged?)")
            return
        self._panel(self.player.lane_for(shown))

    def _panel(self, want: str) -> None:
        """The panel's lane, once it follows (printed only when the demo has a panel)."""
        line = self.player.panel_line(want)
        if line is not None:
            self._print(line)

    def do_ack(self, _arg: str) -> bool:
        """Acknowledge a possible match (as the kiosk's button does)."""
        self.player.agent.signal(signal.SIGUSR1)
        self._print("  =>  acknowledge sent")
        self._panel(self.player.lane_for("idle"))
        return False

    def do_press(self, _arg: str) -> bool:
        """The supervisor's acknowledge button on the annunciator panel."""
        if self.player.panel is None:
            self._print("  =>  no annunciator panel in this demo (micropython not installed)")
            return False
        if self.player.panel.state(1) != "call":
            self._print(f"  =>  nothing to acknowledge: panel {self.player.panel.view()}")
            return False
        self.player.panel.press()
        self._print("  =>  panel button pressed")
        self._panel("acked")
        return False

    def do_status(self, _arg: str) -> bool:
        """The kiosk's last screen and the regional service's counters."""
        events = self.player.agent.events
        events.poll()
        states = [e for e in events.events if e["event"] == "state"]
        last = states[-1]["after"] if states else "(none yet)"
        h = self.player.region.regional.health()
        self._print(
            f"  kiosk screen: {last}; regional (last report) answered {h.get('answered', 0)}, "
            f"refused {sum(h.get('refusals', {}).values())}, ready {h.get('ready')}"
        )
        if self.player.panel is not None:
            self._print(f"  panel: {self.player.panel.view()}")
        return False

    def do_quit(self, _arg: str) -> bool:
        """End the interactive session (the demo then shuts down)."""
        return True

    do_exit = do_quit

    def do_EOF(self, _arg: str) -> bool:
        return True
