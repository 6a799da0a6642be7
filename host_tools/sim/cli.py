"""``fieldterm sim``: simulators. ``fieldterm sim scanner`` serves MRZ documents.

The first line on standard output is the port to open (a pty path, the ``--link``
path, or ``socket://127.0.0.1:PORT``), flushed at once. Without ``--link``, a replug
makes a new pty and its path is printed as another line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sim", help="simulators (document scanner, kiosk fleet)")
    sims = p.add_subparsers(dest="sim", metavar="SIMULATOR")
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])
    add_scanner_parser(sims)
    from host_tools.sim.fleet_cli import add_fleet_parser  # noqa: PLC0415

    add_fleet_parser(sims)


def add_scanner_parser(sims: Any) -> None:
    s = sims.add_parser(
        "scanner",
        help="a document scanner on a pty or TCP port, in any framing",
        description=(
            "Serve MRZ documents like a document scanner. The first stdout line is the port "
            "to open with 'fieldterm scan --port'. Documents come from --file (JSON arrays "
            "of MRZ lines, one per line, or plain text with blank lines between documents), "
            "--generate N (synthetic valid MRZs of every type) or --interactive (MRZ lines "
            "typed on stdin; a blank line sends what was typed). SIGUSR1 unplugs the "
            "scanner and plugs it in again after --replug-after seconds."
        ),
    )
    s.add_argument("--framing", default="lines", choices=("lines", "stx", "rte", "json"))
    s.add_argument(
        "--stx-style",
        default="accessis",
        choices=("accessis", "plain"),
        help="stx framing: FS/GS around the frame (accessis) or none (plain)",
    )
    s.add_argument(
        "--terminator",
        default="crlf",
        choices=("cr", "lf", "crlf"),
        help="lines framing: line ending (default crlf)",
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument(
        "--tcp",
        type=int,
        metavar="PORT",
        help="serve on TCP 127.0.0.1:PORT (0 = any free port) instead of a pty",
    )
    s.add_argument(
        "--link",
        metavar="PATH",
        help="keep a symlink at PATH pointing to the current pty (like /dev/serial/by-id)",
    )
    src = s.add_mutually_exclusive_group()
    src.add_argument("--file", metavar="PATH", help="documents to send")
    src.add_argument("--generate", type=int, metavar="N", help="send N synthetic valid documents")
    src.add_argument("--interactive", action="store_true", help="send MRZ lines typed on stdin")
    s.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="send the --file documents N times"
    )
    s.add_argument(
        "--seed", type=int, default=None, help="seed for synthetic data, junk and truncation"
    )
    s.add_argument(
        "--char-delay", type=float, default=0.0, metavar="SECONDS", help="delay between characters"
    )
    s.add_argument(
        "--doc-delay",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="delay between documents (default 0.5)",
    )
    s.add_argument(
        "--junk-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability of junk before a document",
    )
    s.add_argument(
        "--truncate-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that a document's frame is cut short",
    )
    s.add_argument(
        "--disconnect-every",
        type=int,
        default=0,
        metavar="N",
        help="unplug after every N documents, then replug",
    )
    s.add_argument(
        "--replug-after",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long an unplug lasts (default 1.0)",
    )
    s.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a send waits for a reader to open the port (default 60)",
    )
    s.add_argument(
        "--linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after the last document, stay up this long (default: until killed)",
    )
    s.set_defaults(func=run_scanner)


def run_scanner(args: argparse.Namespace) -> int:
    import random  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    from host_tools.sim.documents import read_documents, synthetic_documents  # noqa: PLC0415
    from host_tools.sim.scanner import ScannerSimulator  # noqa: PLC0415

    terminators = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
    sim = ScannerSimulator(
        args.framing,
        transport="tcp" if args.tcp is not None else "pty",
        port=args.tcp or 0,
        link=args.link,
        char_delay=args.char_delay,
        junk_rate=args.junk_rate,
        truncate_rate=args.truncate_rate,
        seed=args.seed,
        stx_style=args.stx_style,
        terminator=terminators[args.terminator],
        connect_timeout=args.connect_timeout,
    )
    stop = threading.Event()
    unplug_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: unplug_requested.set())

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def bounce() -> None:
        unplug_requested.clear()
        sim.drain()  # what was sent reaches the reader; then the cable goes
        sim.unplug()
        stop.wait(args.replug_after)
        sim.replug()
        if args.link is None and args.tcp is None:
            say(sim.path)

    def documents() -> Any:
        if args.file:
            docs = read_documents(args.file)
            for _ in range(args.repeat):
                yield from docs
        elif args.generate is not None:
            yield from synthetic_documents(random.Random(args.seed), args.generate)
        elif args.interactive:
            yield from _typed_documents(sys.stdin)

    sim.start()
    try:
        say(sim.path)
        sent = 0
        for lines in documents():
            if stop.is_set():
                break
            if unplug_requested.is_set():
                bounce()
            if sent:
                stop.wait(args.doc_delay)
            sim.send(lines)
            sent += 1
            if args.disconnect_every and sent % args.disconnect_every == 0:
                bounce()
        end = None if args.linger is None else time.monotonic() + args.linger
        while not stop.is_set() and (end is None or time.monotonic() < end):
            if unplug_requested.is_set():
                bounce()
            stop.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
        st = sim.stats
        print(
            f"fieldterm sim scanner: documents={st.documents} truncated={st.truncated} "
            f"junk_bytes={st.junk_bytes} unplugs={st.unplugs}",
            file=sys.stderr,
        )
    return 0


def _typed_documents(stream: Any) -> Any:
    """MRZ lines from a terminal: a blank line (or a complete set of lines) sends a document.

    A line that is a JSON array is one whole document.
    """
    import json  # noqa: PLC0415

    pending: list[str] = []
    for raw in stream:
        line = raw.strip()
        if line.startswith("["):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                print("not a JSON array; ignored", file=sys.stderr)
                continue
            yield [str(s) for s in doc]
            continue
        if line:
            pending.append(line)
            need = 3 if len(pending[0]) <= 33 else 2
            if len(pending) < need:
                continue
        if pending:
            yield pending
            pending = []
    if pending:
        yield pending
