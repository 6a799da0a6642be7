"""``fieldterm bench``: benchmarks that print ratios against a baseline measured in the same run.

Each benchmark lives in its own module ``host_tools.bench.<name>`` with
``add_arguments(parser)`` and ``run(args) -> dict`` (the figures, JSON-ready), and may
have ``format_text(result) -> str`` for its readable summary. ``--json`` prints the dict
on one line; otherwise that summary (or a plain table).

A benchmark whose work did not add up (queries lost, refused, wrong or not audited;
lookups answered wrongly) lists why in ``result["failures"]``: each reason goes to stderr
and the command exits 1, after printing the figures (marked invalid by the benchmark).

``bench all`` runs every benchmark at its default size, which fits this machine in a few
minutes; ``--quick`` runs the smoke sizes and ``--full`` the largest (the index at 100 M
keys, about 2.5 GB of memory and 4-5 minutes; the offline list at 100 M keys and a 24 M
kiosk list, a few GB).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

BENCHMARKS = {
    "mrz": "MRZ parse throughput and corpus accuracy against the PyPI 'mrz' package",
    "regional": "sealed, looked-up, audited queries against two plaintext echoes, interleaved",
    "index": "SLTD index: bytes per record and lookups against SQLite in process and "
    "PostgreSQL over TCP on 127.0.0.1 (10 M keys; --full 100 M)",
    "provision": "add-terminals for 10,000 terminals (goal < 60 s), bulk against add-terminal "
    "one at a time, and Mosquitto's start with the fleet's dynamic security",
    "offline": "offline list: fuse filter build, bits per record, false positives, kiosk "
    "lookup (Python mmap vs the C library), RSS mapped vs loaded, delta size (10 M keys)",
    "fleet": "10,000 simulated kiosks at 1,000 scans/s, direct and behind 50 bridged site "
    "brokers, a regional broker restart each; q/s with K = 1, 2, 4 regional processes",
}


_DESCRIPTION = """\
Benchmarks that print ratios against baselines measured in the same run.

A benchmark whose work did not add up (a query lost, refused, answered wrongly or not
audited; an index lookup answered wrongly) prints its figures marked invalid, without
ratios, says why on stderr and exits 1.

Sizes: each benchmark's defaults fit this machine in a few minutes (`make bench`);
`bench all --quick` runs smoke sizes; `bench all --full` (`make bench ARGS=--full`) runs
the index and the offline list at their design size of 100 M keys (a few GB of memory).
"""


_EPILOG = (
    "Exits 1, with the reasons on stderr and no ratios, if the benchmark's work did not "
    "add up (see `fieldterm bench --help`, docs/benchmarks.md)."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run benchmarks (ratios against baselines measured in the same run)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG)
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        bp.set_defaults(func=_run_one, bench_name=name)
        try:
            _module(name).add_arguments(bp)
        except ImportError:
            pass
    ap = bsub.add_parser("all", help="run every benchmark with its defaults")
    ap.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke-run sizes (seconds)")
    size.add_argument(
        "--full",
        action="store_true",
        help="largest sizes (index and offline list at 100 M keys, a few GB)",
    )
    ap.set_defaults(func=_run_all)


def _module(name: str) -> Any:
    return importlib.import_module(f"host_tools.bench.{name}")


def _print(name: str, result: dict[str, Any], as_json: bool) -> int:
    """Print ``result``; report its failures on stderr. Returns the exit status."""
    if as_json:
        print(json.dumps({"benchmark": name, **result}, sort_keys=True), flush=True)
    elif hasattr(_module(name), "format_text"):
        print(_module(name).format_text(result), flush=True)
    else:
        print(f"== bench {name} ==")
        for key, value in result.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"  {key:<40} {shown}")
        sys.stdout.flush()
    failures = result.get("failures") or []
    for why in failures:
        print(f"fieldterm bench {name}: FAILED: {why}", file=sys.stderr)
    return 1 if failures else 0


def _run_one(args: argparse.Namespace) -> int:
    result = _module(args.bench_name).run(args)
    return _print(args.bench_name, result, args.json)


def _run_all(args: argparse.Namespace) -> int:
    status = 0
    for name in BENCHMARKS:
        mod = _module(name)
        parser = argparse.ArgumentParser()
        mod.add_arguments(parser)
        flags = [f for f, on in (("--quick", args.quick), ("--full", args.full)) if on]
        bargs = parser.parse_args([f for f in flags if _has(parser, f)])
        bargs.json = args.json
        status |= _print(name, mod.run(bargs), args.json)
    return status


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in parser._actions)
