"""``fieldterm bench``: benchmarks that print ratios against a baseline measured in the same run.

Each benchmark lives in its own module ``host_tools.bench.<name>`` with
``add_arguments(parser)`` and ``run(args) -> dict`` (the figures, JSON-ready). ``--json``
prints that dict on one line; otherwise a readable table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

BENCHMARKS = {
    "mrz": "MRZ parse throughput and corpus accuracy against the PyPI 'mrz' package",
    "regional": "sealed, looked-up, audited queries against a plaintext paho v5 echo",
    "index": "SLTD index at scale: bytes per record and lookups against PostgreSQL and SQLite",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run benchmarks (ratios against baselines measured in the same run)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=help_text, description=help_text)
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        bp.set_defaults(func=_run_one, bench_name=name)
        try:
            _module(name).add_arguments(bp)
        except ImportError:
            pass
    ap = bsub.add_parser("all", help="run every benchmark with its defaults")
    ap.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    ap.set_defaults(func=_run_all)


def _module(name: str) -> Any:
    return importlib.import_module(f"host_tools.bench.{name}")


def _print(name: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"benchmark": name, **result}, sort_keys=True), flush=True)
        return
    print(f"== bench {name} ==")
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"  {key:<40} {shown}")
    sys.stdout.flush()


def _run_one(args: argparse.Namespace) -> int:
    result = _module(args.bench_name).run(args)
    _print(args.bench_name, result, args.json)
    return 0


def _run_all(args: argparse.Namespace) -> int:
    for name in BENCHMARKS:
        mod = _module(name)
        parser = argparse.ArgumentParser()
        mod.add_arguments(parser)
        bargs = parser.parse_args(["--quick"] if args.quick and _has_quick(parser) else [])
        bargs.json = args.json
        _print(name, mod.run(bargs), args.json)
    return 0


def _has_quick(parser: argparse.ArgumentParser) -> bool:
    return any("--quick" in a.option_strings for a in parser._actions)
