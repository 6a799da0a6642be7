"""``fieldterm regional``: run the regional service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Answer sealed SLTD queries for one region. Reads regional.toml ([regional], [broker]),
subscribes to the region's query topics with a shared subscription (run several
processes with the same config to share the load), answers NO_MATCH / POSSIBLE_MATCH /
ERROR, publishes signed hit alerts, keeps an audit trail of keyed hashes (never document
numbers) and writes a health JSON file every few seconds. Tampered, replayed,
foreign-keyed or revoked-terminal queries get no answer. Reconnects after broker
restarts; terminals.json and the SLTD store are reloaded while running.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regional",
        help="run the regional query service",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="regional.toml (default /etc/fieldterm/regional.toml, or "
        "$FIELDTERM_ETC/regional.toml), with its regional.d/*.toml drop-ins and "
        "FIELDTERM_<SECTION>__<KEY> variables layered on top",
    )
    p.add_argument(
        "--health-file",
        type=Path,
        help="health JSON path for this process (default [regional] health_file)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from host_tools.regional.config import RegionalConfig  # noqa: PLC0415
    from host_tools.regional.service import RegionalService  # noqa: PLC0415

    cfg = RegionalConfig.load(args.config)
    if args.health_file is not None:
        cfg = dataclasses.replace(cfg, health_file=args.health_file.resolve())
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.warning("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    svc = RegionalService(cfg)
    log.warning("regional %s: serving (pid health in %s)", cfg.region, cfg.health_file)
    svc.run(stop)
    return 0
