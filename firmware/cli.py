"""The ``fieldterm`` command.

The firmware's own subcommands (:data:`BUILTIN_COMMANDS`: the kiosk's agent and the
MRZ, scanner, query, audit, signals and offline-list tools) are named here; host tools
plug in through the ``fieldterm.commands`` entry-point group (see pyproject.toml), so firmware never
imports host_tools. Each is a ``register(subparsers)`` function that adds its parser and
sets ``func`` to a handler ``(args) -> int``. Registration must be cheap: heavy imports
happen inside handlers.

When the command line names a subcommand, only that one is registered: ``fieldterm
agent`` imports neither a host tool nor ``importlib.metadata`` (reading the installed
entry points costs the kiosk agent about 40 ms and 0.6-0.8 MB of resident memory);
``fieldterm --help`` and host-tool commands read the entry points.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence

from firmware import __version__
from firmware.errors import BadDataError, FieldtermError, SetupError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_SETUP = 4
EXIT_BAD_DATA = 65  # EX_DATAERR

#: The firmware's own subcommands: name -> ``module:register``.
BUILTIN_COMMANDS = {
    "agent": "firmware.agent.cli:register",
    "audit": "firmware.agent.audit_cli:register",
    "mrz": "firmware.mrz.cli:register",
    "offline": "firmware.offline.cli:register",
    "query": "firmware.client.cli:register",
    "scan": "firmware.scanner.cli:register",
    "signals": "firmware.signals.cli:register",
}
ENTRY_POINT_GROUP = "fieldterm.commands"

Register = Callable[[argparse._SubParsersAction], None]


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not an option
    (``fieldterm``'s own options take no values), or None."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``fieldterm`` parser; with ``command``, only that subcommand is registered (when
    it exists; otherwise all are, so argparse lists the choices)."""
    parser = argparse.ArgumentParser(
        prog="fieldterm",
        description=(
            "Field terminal for border crossings: read a passport MRZ, check it against the "
            "stolen and lost travel document list over sealed MQTT, and provision terminals."
        ),
    )
    parser.add_argument("--version", action="version", version=f"fieldterm {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, load in _commands(command):
        try:
            register = load()
        except ImportError as exc:
            # A part that cannot load on this machine (for example a missing extra) must not
            # take the whole command down; say which part and why.
            log.debug("subcommand %s unavailable: %s", name, exc)
            stub = sub.add_parser(name, help=f"(unavailable here: {exc})")
            stub.set_defaults(func=_unavailable(name, exc))
            continue
        register(sub)
    return parser


def _commands(command: str | None) -> Iterable[tuple[str, Callable[[], Register]]]:
    """``(name, load)`` for the subcommands to register, in name order."""
    if command in BUILTIN_COMMANDS:
        return [(command, _builtin(BUILTIN_COMMANDS[command]))]
    from importlib.metadata import entry_points  # noqa: PLC0415

    found: dict[str, Callable[[], Register]] = {
        ep.name: ep.load
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.name not in BUILTIN_COMMANDS  # a plug-in never replaces a firmware command
    }
    found.update({name: _builtin(target) for name, target in BUILTIN_COMMANDS.items()})
    if command in found:
        return [(command, found[command])]
    return sorted(found.items())


def _builtin(target: str) -> Callable[[], Register]:
    module, _, attr = target.partition(":")

    def load() -> Register:
        register: Register = getattr(importlib.import_module(module), attr)
        return register

    return load


def _unavailable(name: str, exc: Exception) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        print(f"fieldterm {name}: not available on this machine: {exc}", file=sys.stderr)
        return EXIT_SETUP

    return run


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    env = os.environ.get("FIELDTERM_LOG_LEVEL")
    if env:
        level = getattr(logging, env.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(requested_command(words))
    args = parser.parse_args(words)
    configure_logging(args.verbose)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SetupError as exc:
        print(f"fieldterm {args.command}: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except BadDataError as exc:
        print(f"fieldterm {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except FieldtermError as exc:
        print(f"fieldterm {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
