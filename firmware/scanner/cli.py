"""``fieldterm scan``: read documents from a scanner port and print them.

Contract (tests outside the project rely on it):
``fieldterm scan --port URL [--framing auto|lines|stx|rte|json] [--baud N]
[--parity N|E|O] [--count N] [--timeout SECONDS] --jsonl`` prints one JSON object per
document, ``{"framing": ..., "lines": [...], "mrz": <as 'fieldterm mrz parse --jsonl'>}``,
exits 0 after ``--count`` documents and 3 when the timeout passes first. Junk prints
nothing; the counters go to standard error at exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scan",
        help="read MRZ documents from a document scanner port",
        description=(
            "Read documents from a scanner on a serial port (any pyserial URL: a device "
            "path such as /dev/serial/by-id/..., socket://host:port, loop://, spy://...) "
            "and print one line per document. Framings: lines (CR/LF-ended lines), stx "
            "(STX lines ETX, DESKO and Access-IS styles), rte (3M RTE SOH/length/BCC), json "
            "(STX JSON ETX CR LF) and auto (detected from the bytes). An unplugged port is "
            "re-opened with backoff. Junk prints nothing; counters go to stderr at exit."
        ),
    )
    p.add_argument("--port", required=True, metavar="URL", help="device path or pyserial URL")
    p.add_argument(
        "--framing",
        default="auto",
        choices=("auto", "lines", "stx", "rte", "json"),
        help="how the scanner frames its output (default: auto)",
    )
    p.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    p.add_argument("--parity", default="N", choices=("N", "E", "O"), help="parity (default N)")
    p.add_argument("--bytesize", type=int, default=8, choices=(5, 6, 7, 8), help="data bits")
    p.add_argument("--stopbits", type=float, default=1, choices=(1, 1.5, 2), help="stop bits")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="a gap this long ends a partial document or frame (default 0.5)",
    )
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit 0 after N documents")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit 3 if --count documents have not arrived in this time",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--tolerant", action="store_true", help="MRZ tolerant mode")
    mode.add_argument("--repair", action="store_true", help="MRZ repair mode (OCR confusions)")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib  # noqa: PLC0415 - keep register() cheap
    import queue  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from firmware.scanner.base import ScannedDocument  # noqa: PLC0415
    from firmware.scanner.port import ScannerConfig, ScannerReader  # noqa: PLC0415

    if args.count is not None and args.count < 1:
        print("fieldterm scan: --count must be at least 1", file=sys.stderr)
        return 2
    if args.timeout is not None and args.timeout <= 0:
        print("fieldterm scan: --timeout must be positive", file=sys.stderr)
        return 2
    config = ScannerConfig(
        port=args.port,
        framing=args.framing,
        baud=args.baud,
        parity=args.parity,
        bytesize=args.bytesize,
        stopbits=args.stopbits,
        idle_timeout=args.idle_timeout,
    )
    mrz_mode = "repair" if args.repair else "tolerant" if args.tolerant else "strict"
    docs: queue.Queue[ScannedDocument] = queue.Queue()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    warned = False
    code = EXIT_OK
    # SIGINT ends the run with the counters (exit 130), as the agent and the regional stop
    # on it, even when it was inherited ignored: a background job of a script starts with
    # SIGINT ignored, and Python then installs no KeyboardInterrupt of its own, so an
    # interrupted scan read on (and held the port) for ever.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reader = ScannerReader(config, docs.put, mrz_mode=mrz_mode)
    with reader, contextlib.suppress(KeyboardInterrupt):
        code = EXIT_INTERRUPTED  # unless the loop below ends on its own
        while args.count is None or seen < args.count:
            wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait <= 0:
                code = EXIT_TIMEOUT
                break
            try:
                doc = docs.get(timeout=wait)
            except queue.Empty:
                health = reader.health()
                if not warned and not health["connected"] and health["last_error"]:
                    print(
                        f"fieldterm scan: waiting for {args.port}: {health['last_error']}",
                        file=sys.stderr,
                    )
                    warned = True
                continue
            seen += 1
            _print(doc, args.jsonl)
        else:
            code = EXIT_OK
    health = reader.health()
    print(
        f"fieldterm scan: documents={seen} "
        + " ".join(f"{k}={health[k]}" for k in ("junk_bytes", "bad_frames", "reopens", "framing"))
        + {EXIT_TIMEOUT: " (timeout)", EXIT_INTERRUPTED: " (interrupted)"}.get(code, ""),
        file=sys.stderr,
    )
    return code


def _print(doc: Any, jsonl: bool) -> None:
    if jsonl:
        sys.stdout.write(json.dumps(doc.to_json()) + "\n")
    else:
        mrz = doc.mrz
        verdict = "valid" if mrz.valid else "INVALID (" + ", ".join(mrz.to_json()["errors"]) + ")"
        sys.stdout.write(f"{doc.framing}: {mrz.to_json()['doc_type'] or '?'} {verdict}\n")
    sys.stdout.flush()
