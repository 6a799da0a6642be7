"""``fieldterm query``: real sealed queries for MRZs read as JSON lines, one verdict each."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import IO, Any

_DESCRIPTION = """\
Send sealed SLTD queries as the terminal configured in TERMINAL_TOML and print one JSON
line per input line, in input order.

Input: JSON lines from FILE (--mrz-jsonl FILE) or standard input (the default, or
--mrz-jsonl -): one JSON array of MRZ lines per line, the input format of
'fieldterm mrz parse --jsonl'. Each is parsed with the MRZ engine (--mode). An invalid
MRZ is not queried: it prints {"outcome": "RESCAN", "verdict": "RESCAN", "errors": [...]}.
Blank lines are skipped. Valid documents are all sent at once (pipelined), then answered:

  {"outcome": "NO_MATCH"|"POSSIBLE_MATCH"|"ERROR"|"TIMEOUT", "verdict": "CLEAR"|
   "POSSIBLE MATCH"|"UNKNOWN", "query_id": hex, "list_version": int|null,
   "record": {...}|null, "reason": str|null, "latency_ms": float}

A TIMEOUT or ERROR is UNKNOWN, never CLEAR. No MRZ text or document number is printed.
"""

_EPILOG = """\
exit status: 0 when every valid document got an answer (any outcome), 3 if any TIMEOUT,
4 for a configuration problem.

example:
  fieldterm sltd generate --records 2000 --out sltd.sqlite --listed-sample hits.jsonl
  fieldterm query --config bundle/terminal.toml --mrz-jsonl hits.jsonl
  fieldterm query --config bundle/terminal.toml < hits.jsonl   # standard input
"""

DISPLAY = {
    "NO_MATCH": "CLEAR",
    "POSSIBLE_MATCH": "POSSIBLE MATCH",
    "ERROR": "UNKNOWN",
    "TIMEOUT": "UNKNOWN",
    "RESCAN": "RESCAN",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="send sealed SLTD queries for MRZs (JSON lines) and print the verdicts",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="TERMINAL_TOML",
        help="terminal.toml (default /etc/fieldterm/terminal.toml, or "
        "$FIELDTERM_ETC/terminal.toml), with its terminal.d/*.toml drop-ins and "
        "FIELDTERM_<SECTION>__<KEY> variables layered on top",
    )
    p.add_argument(
        "--mrz-jsonl",
        metavar="FILE",
        nargs="?",
        const="-",
        default="-",
        type=argparse.FileType("r", encoding="utf-8"),
        help="JSON arrays of MRZ lines, one document per line, from FILE; '-' (or the flag "
        "alone, or no flag) reads standard input",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per query (default [protocol] query_timeout)",
    )
    p.add_argument(
        "--mode",
        choices=("strict", "tolerant", "repair"),
        default="strict",
        help="MRZ parsing mode (default strict)",
    )
    p.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds to wait for the broker (10)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from firmware.client.client import QueryClient  # noqa: PLC0415
    from firmware.client.config import ClientConfig  # noqa: PLC0415

    source: IO[str] = args.mrz_jsonl
    cfg = ClientConfig.load(args.config)
    if source is sys.stdin and sys.stdin.isatty():
        print(
            "fieldterm query: reading JSON lines from the terminal (Ctrl-D ends)", file=sys.stderr
        )
    try:
        with QueryClient(cfg) as qc:
            qc.wait_connected(
                args.connect_timeout
            )  # queries sent offline still wait their deadline
            return run_queries(qc, source, sys.stdout, args.mode, args.timeout)
    finally:
        if source is not sys.stdin:
            source.close()


def run_queries(qc: Any, stdin: IO[str], stdout: IO[str], mode: str, timeout: float | None) -> int:
    """Parse every line, pipeline the queries, print answers in input order."""
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

    outputs: list[dict[str, Any] | None] = []
    done = threading.Condition()
    waiting = 0

    def answer(slot: int) -> Any:
        def cb(v: Any) -> None:
            nonlocal waiting
            with done:
                if outputs[slot] is None:
                    out = v.to_json()
                    out["verdict"] = DISPLAY.get(v.outcome, "UNKNOWN")
                    outputs[slot] = out
                    waiting -= 1
                    done.notify_all()

        return cb

    for raw in stdin:
        text = raw.strip().removeprefix("\ufeff")
        if not text:
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not (isinstance(doc, list) and all(isinstance(x, str) for x in doc)):
            outputs.append(_rescan(["structure:input"]))
            continue
        result = parse(doc, mode)
        if not result.valid:
            outputs.append(_rescan(list(result.to_json().get("errors") or [])))
            continue
        try:
            dk = DocumentKey.from_mrz(result)
        except ValueError:
            outputs.append(_rescan(["structure:document_key"]))
            continue
        with done:
            outputs.append(None)
            waiting += 1
        qc.submit(os.urandom(16), dk, answer(len(outputs) - 1), timeout=timeout)
    limit = (qc.cfg.query_timeout if timeout is None else timeout) + 10.0
    with done:
        done.wait_for(lambda: waiting == 0, timeout=limit)
    timeouts = 0
    missing = {"outcome": "TIMEOUT", "verdict": "UNKNOWN", "reason": "no verdict"}
    for out in outputs:
        row = missing if out is None else out
        timeouts += row["outcome"] == "TIMEOUT"
        stdout.write(json.dumps(row) + "\n")
    stdout.flush()
    return 3 if timeouts else 0


def _rescan(errors: list[str]) -> dict[str, Any]:
    return {"outcome": "RESCAN", "verdict": "RESCAN", "errors": errors}
