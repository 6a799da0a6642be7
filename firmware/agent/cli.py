"""``fieldterm agent``: run the terminal agent (the systemd service's command)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from firmware.agent.refusal import HOLD
from firmware.signals.backends import DISPLAYS, PANELS

CONFIG_HELP = (
    "terminal.toml (default /etc/fieldterm/terminal.toml, or $FIELDTERM_ETC/terminal.toml); "
    "drop-ins in terminal.d/*.toml next to it, then FIELDTERM_<SECTION>__<KEY> variables, "
    "then these flags override it key by key"
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run the terminal agent (scanner -> sealed query -> LEDs, buzzer, display)",
        description=(
            "Run the kiosk agent: read documents from the scanner, check each against the "
            "stolen and lost travel document list through the regional service, and show "
            "the verdict on the LEDs, buzzer and display. Accepted scans are kept in an "
            "outbox until answered; every verdict is written to a hash-chained audit log. "
            "SIGTERM stops it with the signals off; SIGUSR1 acknowledges a possible match (so does "
            "Enter with --signals console on a terminal)."
        ),
    )
    p.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--signals", choices=PANELS.names, help="override [signals] backend")
    p.add_argument(
        "--display",
        choices=DISPLAYS.names,
        help="override [signals] display",
    )
    p.add_argument("--scanner-port", help="override [scanner] port (a device or pyserial URL)")
    p.add_argument("--state-dir", help="override [agent] state_dir")
    p.add_argument("--events-file", help="override [agent] events_file (JSON lines of outcomes)")
    p.add_argument("--language", help="override [terminal] language")
    p.add_argument(
        "--fault-hold",
        type=float,
        default=HOLD,
        metavar="SECONDS",
        help=f"on a refusal at start, show FAULT this long before exiting (default {HOLD:g})",
    )
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            out.setdefault(section, {})[key] = value

    put("signals", "backend", args.signals)
    put("signals", "display", args.display)
    put("scanner", "port", args.scanner_port)
    put("agent", "state_dir", args.state_dir)
    put("agent", "events_file", args.events_file)
    put("terminal", "language", args.language)
    return out


def configure_journal_logging() -> None:
    """Under systemd, log lines go to the journal, which stamps time itself: no timestamps,
    and a ``<N>`` syslog priority prefix that journald understands."""
    from firmware.systemd import under_systemd  # noqa: PLC0415

    if not under_systemd():
        return
    prio = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    class JournalFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"<{prio.get(record.levelname, 6)}>{record.name}: {record.getMessage()}" + (
                "\n" + self.formatException(record.exc_info) if record.exc_info else ""
            )

    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for h in root.handlers:
        h.setFormatter(JournalFormatter())
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(JournalFormatter())
        root.addHandler(h)


def _run(args: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415

    from firmware.agent.agent import Agent  # noqa: PLC0415
    from firmware.agent.config import load_agent_config  # noqa: PLC0415

    configure_journal_logging()
    cfg = load_agent_config(args.config, overrides=_overrides(args))
    agent = Agent(cfg)
    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    signal.signal(signal.SIGINT, lambda *_: agent.request_stop())
    signal.signal(signal.SIGUSR1, lambda *_: agent.acknowledge())
    try:
        try:
            agent.start()
        except Exception as exc:
            agent.refuse(exc, args.fault_hold)  # FAULT on the LEDs and display, not dark
            raise
        return agent.run()
    finally:
        agent.close()
