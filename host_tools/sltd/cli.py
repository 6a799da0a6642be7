"""``fieldterm sltd``: generate, import, remove, index and summarise an SLTD store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_DESC = """\
Manage the stolen and lost travel document store (a SQLite file, or a postgresql:// URL).

Records are non-nominal: issuing state, document category (P, I, A, C, V), document
number, status, reporting country, dates and the reporting bureau's reference.

examples:
  fieldterm sltd generate --records 1000000 --seed 7 --out sltd.sqlite \\
      --listed-sample listed.jsonl --unlisted-sample clean.jsonl
  fieldterm sltd generate --records 1000000 --out broker/sltd.sqlite \\
      --index-key broker/index.key        # and prebuild the regional's index
  fieldterm sltd import --db sltd.sqlite updates.csv
  fieldterm sltd remove --db sltd.sqlite withdrawn.csv
  fieldterm sltd index --db sltd.sqlite --index-key index.key
  fieldterm sltd stats --db sltd.sqlite
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "sltd",
        help="SLTD store tools: generate, import, remove, index, stats",
        description=_DESC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="sltd_command", metavar="ACTION", required=True)

    g = s.add_parser(
        "generate",
        help="write a synthetic list (deterministic by seed)",
        description=(
            "Write a synthetic SLTD store with a realistic spread over ~170 issuing states, "
            "document types and statuses. The same --records and --seed give the same list. "
            "Optionally write MRZs of listed documents (they must hit) and of unlisted ones "
            "(they must not), one JSON array of MRZ lines per line: the input of "
            "'fieldterm mrz parse --jsonl' and 'fieldterm query --mrz-jsonl'. With "
            "--index-key, also build the regional service's query-path index "
            "(<out>.idx-<keyid>, as 'fieldterm sltd index' does), so its first start does "
            "not have to (about 25 s per 10 M records)."
        ),
    )
    g.add_argument("--records", type=int, default=1_000_000, help="records (default 1000000)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    g.add_argument("--out", required=True, type=Path, help="SQLite file to create")
    g.add_argument("--force", action="store_true", help="replace --out if it exists")
    g.add_argument("--listed-sample", type=Path, help="write MRZs of listed documents here")
    g.add_argument("--unlisted-sample", type=Path, help="write MRZs of unlisted documents here")
    g.add_argument("--sample-size", type=int, default=100, help="documents per sample (100)")
    g.add_argument(
        "--index-key",
        type=Path,
        metavar="FILE",
        help="also build the query-path index, keyed by FILE: the 32-byte hex index key "
        "that regional.toml's index_key names (broker-config writes it as index.key)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    g.set_defaults(func=_generate)

    i = s.add_parser(
        "import",
        help="add or replace records from CSV files (one transaction)",
        description=(
            "Validate every row of every CSV file, then add or replace the records in one "
            "transaction; on any error nothing is imported and the error names the file, "
            "line and column.\n\nheader (event_date optional, columns in any order):\n  "
            "issuing_state,document_type,document_number,status,reporting_country,"
            "reported_on,event_date,reference\n\nexample row:\n  "
            "FRA,PASSPORT,12AB34567,STOLEN,FRA,2025-03-01,2025-02-27,FRA/2025/0001234"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("--db", required=True, help="SQLite path or postgresql:// URL")
    i.add_argument("csv", nargs="+", type=Path, help="CSV files")
    i.set_defaults(func=_import)

    r = s.add_parser(
        "remove",
        help="remove records listed in CSV files (one transaction)",
        description=(
            "Remove the records named by CSV files with at least the columns issuing_state, "
            "document_type, document_number (an import file works too)."
        ),
    )
    r.add_argument("--db", required=True, help="SQLite path or postgresql:// URL")
    r.add_argument("csv", nargs="+", type=Path, help="CSV files")
    r.set_defaults(func=_remove)

    x = s.add_parser(
        "index",
        help="build (or bring up to date) the query-path hash index",
        description=(
            "Build the memory-mapped hash index the regional service uses, so that its first "
            "start does not have to. Written next to a SQLite store as <db>.idx-<keyid>."
        ),
    )
    x.add_argument("--db", required=True, help="SQLite path or postgresql:// URL")
    x.add_argument(
        "--index-key",
        required=True,
        type=Path,
        help="file with the 32-byte index key in hex (regional.toml index_key)",
    )
    x.add_argument("--index-dir", type=Path, help="directory for the index (needed for PG)")
    x.add_argument("--rebuild", action="store_true", help="rebuild even if up to date")
    x.set_defaults(func=_index)

    t = s.add_parser("stats", help="counts by status, type and issuing state; list version")
    t.add_argument("--db", required=True, help="SQLite path or postgresql:// URL")
    t.add_argument("--top", type=int, default=10, help="issuing states to list (10)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=_stats)


def _generate(args: argparse.Namespace) -> int:
    from host_tools.sltd.samples import generate_store  # noqa: PLC0415

    summary = generate_store(
        args.out,
        records=args.records,
        seed=args.seed,
        force=args.force,
        listed_sample=args.listed_sample,
        unlisted_sample=args.unlisted_sample,
        sample_size=args.sample_size,
        progress=not args.no_progress,
    )
    print(
        f"wrote {summary['records']:,} records to {args.out} in {summary['seconds']:.1f} s "
        f"({summary['records_per_second']:,.0f} records/s); list version "
        f"{summary['list_version']}"
    )
    for key in ("listed_sample", "unlisted_sample"):
        if summary.get(key):
            print(f"wrote {summary[key + '_count']} MRZs to {summary[key]}")
    if args.index_key:
        from host_tools.sltd.lookup import SltdLookup, read_index_key  # noqa: PLC0415

        key_bytes = read_index_key(args.index_key)
        with SltdLookup.open(args.out, key_bytes, progress=not args.no_progress) as lk:
            print(f"index {lk.path}: {len(lk):,} records")
    return 0


def _import(args: argparse.Namespace) -> int:
    from host_tools.sltd.importer import import_csv  # noqa: PLC0415
    from host_tools.sltd.store import open_store  # noqa: PLC0415

    with open_store(args.db, setting="--db") as store:
        n = import_csv(store, args.csv)
        print(f"imported {n:,} records; list version {store.version()}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from host_tools.sltd.importer import load_keys  # noqa: PLC0415
    from host_tools.sltd.store import open_store  # noqa: PLC0415

    keys = load_keys(args.csv)
    with open_store(args.db, setting="--db") as store:
        n = store.remove(keys)
        print(f"removed {n:,} of {len(keys):,} records named; list version {store.version()}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from host_tools.sltd.lookup import SltdLookup, read_index_key  # noqa: PLC0415

    key = read_index_key(args.index_key)
    with SltdLookup.open(args.db, key, index_dir=args.index_dir, progress=True) as lk:
        if args.rebuild:
            lk.rebuild(wait=True)
        if lk.overlay_size:
            lk.compact(wait=True)
        size = lk.path.stat().st_size
        n = len(lk)
        print(
            f"index {lk.path}: {n:,} records, list version {lk.list_version}, "
            f"{size / 1e6:,.1f} MB ({size / max(n, 1):.2f} bytes/record)"
        )
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from host_tools.sltd.stats import format_stats  # noqa: PLC0415
    from host_tools.sltd.store import open_store  # noqa: PLC0415

    with open_store(args.db, setting="--db") as store:
        st = store.stats(top=args.top)
    if args.json:
        print(json.dumps(st, sort_keys=True))
    else:
        print(format_stats(st))
    sys.stdout.flush()
    return 0
