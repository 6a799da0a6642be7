"""SLTD index micro-benchmark: our memory-mapped hash index against SQLite and PostgreSQL.

All three hold the same N keyed 64-bit hashes (made directly with numpy: every lookup
structure is keyed by that hash, so hashing a document key costs the same in front of
each and is reported separately) and answer the same probes, a shuffled mix of hits
and misses, one at a time from Python:

- ours: ``HashIndex.contains`` over the index file (sorted uint64 + bucket table, mmap),
  in process;
- SQLite: ``h INTEGER PRIMARY KEY`` in a ``WITHOUT ROWID`` table, warm page cache, in
  process: the like-for-like comparison, reported first;
- PostgreSQL 15: ``h bigint PRIMARY KEY``, loaded with binary COPY, queried **over TCP on
  127.0.0.1** with a prepared statement, in a cluster this benchmark starts and stops. Its
  lookup time includes a loopback round trip and a server process that the in-process
  structures do not have, so its lookup figures are named ``pg_tcp_*``.

Reports bytes per record on the query path, build/load times and per-lookup times with
the ratios ``sqlite_over_index`` and ``pg_tcp_over_index`` (targets: <= 9 bytes/record and
>= 20x PostgreSQL at 100 M records), and the peak RSS of the benchmark process
(``peak_rss_mb``; under ``bench all``, of every benchmark run so far in that process). Sizes: 10 M keys by
default (about a minute and a few hundred MB), ``--quick`` 1 M, ``--full`` 100 M (about
4-5 minutes and 2.5 GB). A lookup that answers wrongly is a failure: the ratios are
withheld and ``fieldterm bench`` exits 1.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from host_tools.sltd import index as ix


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, help="keys (default 10 M; --quick 1 M; --full 100 M)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1 M keys, fewer probes (smoke run)")
    size.add_argument(
        "--full", action="store_true", help="100 M keys (the design size: ~2.5 GB, 4-5 min)"
    )
    p.add_argument("--probes", type=int, default=20_000, help="lookups per round (20000)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; median reported (3)")
    p.add_argument("--hit-ratio", type=float, default=0.5, help="share of probes that hit")
    p.add_argument("--pg-records", type=int, help="keys loaded into PostgreSQL (default all)")
    p.add_argument("--sqlite-records", type=int, help="keys loaded into SQLite (default all)")
    p.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    p.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    p.add_argument("--seed", type=int, default=1)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _per_lookup_us(
    probe: Callable[[int], bool], keys: Sequence[int], rounds: int, expect: Sequence[bool]
) -> tuple[float, int]:
    """Median over rounds of mean µs per single lookup, and how many of the probes it
    answered wrongly (every answer is checked once, in the warm-up round)."""
    wrong = sum(probe(k) != e for k, e in zip(keys, expect, strict=True))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for k in keys:
            probe(k)
        times.append((time.perf_counter() - t0) / len(keys) * 1e6)
    return statistics.median(times), wrong


def make_keys(n: int, seed: int) -> np.ndarray:
    """n distinct random uint64 hashes, sorted."""
    r = np.random.default_rng([seed, 64])
    keys = ix.sort_unique(r.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True))
    while keys.size < n:  # a duplicate among 2^64 is rare; top up and resort
        extra = r.integers(0, 2**64 - 1, n - keys.size, dtype=np.uint64, endpoint=True)
        keys = ix.sort_unique(np.concatenate([keys, extra]))
    return keys


def make_probes(
    keys: np.ndarray, count: int, hit_ratio: float, seed: int
) -> tuple[list[int], list[bool]]:
    r = np.random.default_rng([seed, 65])
    hits = int(count * hit_ratio)
    hit_keys = keys[r.integers(0, keys.size, hits)]
    miss = r.integers(0, 2**64 - 1, count - hits, dtype=np.uint64, endpoint=True)
    pos = np.searchsorted(keys, miss)
    inside = pos < keys.size
    present = np.zeros(miss.size, dtype=bool)
    present[inside] = keys[pos[inside]] == miss[inside]
    miss = miss[~present]
    probes = np.concatenate([hit_keys, miss])
    expect = np.concatenate([np.ones(hit_keys.size, bool), np.zeros(miss.size, bool)])
    order = r.permutation(probes.size)
    return [int(x) for x in probes[order]], [bool(x) for x in expect[order]]


def _signed(keys: np.ndarray) -> np.ndarray:
    return keys.view(np.int64)


def bench_sqlite(path: Path, keys: np.ndarray) -> tuple[dict[str, Any], Callable[[int], bool]]:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
        "CREATE TABLE sltd(h INTEGER PRIMARY KEY) WITHOUT ROWID"
    )
    t0 = time.perf_counter()
    db.execute("BEGIN")
    # signed order is not unsigned order: insert in signed order so the B-tree only appends
    signed = np.sort(_signed(keys))
    step = 1_000_000
    for i in range(0, signed.size, step):
        db.executemany("INSERT INTO sltd VALUES (?)", ((x,) for x in signed[i : i + step].tolist()))
    db.execute("COMMIT")
    load = time.perf_counter() - t0
    stmt = "SELECT 1 FROM sltd WHERE h=?"
    ex = db.execute
    top = 1 << 63

    def probe(k: int) -> bool:
        return ex(stmt, (k - (1 << 64) if k >= top else k,)).fetchone() is not None

    return {
        "sqlite_load_s": load,
        "sqlite_bytes_per_record": path.stat().st_size / keys.size,
    }, probe


def bench_postgres(
    workdir: Path, keys: np.ndarray
) -> tuple[dict[str, Any], Callable[[int], bool], Callable[[], None]]:
    import psycopg  # noqa: PLC0415

    from host_tools.sltd.pgcluster import PgCluster  # noqa: PLC0415

    # enough buffers for table and key index (~60 bytes a key), 128 MB to 3 GB
    buffers_mb = min(3072, max(128, keys.size * 64 >> 20))
    pg = PgCluster(
        workdir / "pg",
        settings={
            "shared_buffers": f"'{buffers_mb}MB'",
            "maintenance_work_mem": "'2GB'",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "max_wal_size": "'8GB'",
        },
    ).start()
    try:
        db = psycopg.connect(pg.url, autocommit=True)
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        with db.transaction():
            db.execute("CREATE TABLE sltd(h bigint)")
            rows = np.empty(0, dtype=[("n", ">i2"), ("l", ">i4"), ("v", ">i8")])
            with db.cursor() as cur, cur.copy("COPY sltd FROM STDIN WITH (FORMAT binary)") as cp:
                cp.write(b"PGCOPY\n\xff\r\n\0" + b"\0" * 8)
                step = 2_000_000
                for i in range(0, keys.size, step):
                    part = _signed(keys[i : i + step])
                    rows = np.empty(part.size, dtype=rows.dtype)
                    rows["n"], rows["l"], rows["v"] = 1, 8, part
                    cp.write(rows.tobytes())
                cp.write(b"\xff\xff")
        out["pg_copy_s"] = time.perf_counter() - t0
        _, out["pg_primary_key_s"] = _timed(
            lambda: db.execute("ALTER TABLE sltd ADD PRIMARY KEY (h)")
        )
        _, out["pg_vacuum_analyze_s"] = _timed(lambda: db.execute("VACUUM ANALYZE sltd"))
        out["pg_load_s"] = out["pg_copy_s"] + out["pg_primary_key_s"] + out["pg_vacuum_analyze_s"]
        size = db.execute("SELECT pg_total_relation_size('sltd')").fetchone()
        out["pg_bytes_per_record"] = int(size[0]) / keys.size if size else None
        top = 1 << 63
        ex = db.execute

        def probe(k: int) -> bool:
            return (
                ex(
                    "SELECT 1 FROM sltd WHERE h=%s",
                    (k - (1 << 64) if k >= top else k,),
                    prepare=True,
                ).fetchone()
                is not None
            )

        def stop() -> None:
            db.close()
            pg.stop()

        return out, probe, stop
    except BaseException:
        pg.stop()
        raise


def _hash_cost_us(rounds: int) -> float:
    """Keyed BLAKE2b-64 of a canonical key from a pre-keyed state (same in front of all)."""
    from host_tools.sltd.lookup import prekeyed_hasher  # noqa: PLC0415

    h = prekeyed_hasher(b"k" * 32)
    data = [f"FRA|P|{i:09d}".encode() for i in range(20_000)]
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for d in data:
            h(d)
        times.append((time.perf_counter() - t0) / len(data) * 1e6)
    return statistics.median(times)


def records_for(args: argparse.Namespace) -> int:
    """``--records`` if given, else 1 M with ``--quick``, 100 M with ``--full``, else 10 M."""
    if args.records:
        return int(args.records)
    return 1_000_000 if args.quick else 100_000_000 if args.full else 10_000_000


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = records_for(args)
    probes_n = min(args.probes, 5_000) if args.quick else args.probes
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="fieldterm-bench-index-")
        work = Path(tmp)
    try:
        res = _run(args, n, probes_n, work)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def _subset(
    keys: np.ndarray, n: int, probes: tuple[list[int], list[bool]], args: argparse.Namespace
) -> tuple[np.ndarray, tuple[list[int], list[bool]]]:
    """Every ``len/n``-th key (all when ``n`` is the whole set) and probes for them."""
    if n >= keys.size:
        return keys, probes
    sub = np.sort(keys[:: max(keys.size // n, 1)][:n])
    return sub, make_probes(sub, len(probes[0]), args.hit_ratio, args.seed)


def _run(args: argparse.Namespace, n: int, probes_n: int, work: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"records": n, "probes": probes_n, "hit_ratio": args.hit_ratio}
    keys, res["keygen_s"] = _timed(lambda: make_keys(n, args.seed))
    probes, expect = make_probes(keys, probes_n, args.hit_ratio, args.seed)
    path = work / "bench.idx"
    _, res["index_build_s"] = _timed(
        lambda: ix.write_index(
            path, keys, list_version=1, store_id="00" * 16, index_key_id=b"\0" * 8
        )
    )
    idx = ix.HashIndex(path)
    res["index_bytes_per_record"] = idx.nbytes / n
    res["index_lookup_us"], wrong = _per_lookup_us(idx.contains, probes, args.rounds, expect)
    failures = [f"index: {wrong} of {len(probes)} lookups answered wrongly"] if wrong else []
    res["hash_us"] = _hash_cost_us(args.rounds)

    if not args.no_sqlite:
        skeys, (s_probes, s_expect) = _subset(
            keys, args.sqlite_records or n, (probes, expect), args
        )
        info, probe = bench_sqlite(work / "bench.sqlite", skeys)
        res.update(info, sqlite_records=skeys.size)
        res["sqlite_lookup_us"], wrong = _per_lookup_us(probe, s_probes, args.rounds, s_expect)
        if wrong:
            failures.append(f"sqlite: {wrong} of {len(s_probes)} lookups answered wrongly")
        res["sqlite_over_index"] = res["sqlite_lookup_us"] / res["index_lookup_us"]
        (work / "bench.sqlite").unlink(missing_ok=True)
    if not args.no_postgres:
        pkeys, (p_probes, p_expect) = _subset(keys, args.pg_records or n, (probes, expect), args)
        info, probe, stop = bench_postgres(work, pkeys)
        try:
            res.update(info, pg_records=pkeys.size)
            res["pg_tcp_lookup_us"], wrong = _per_lookup_us(probe, p_probes, args.rounds, p_expect)
        finally:
            stop()
        if wrong:
            failures.append(f"postgres: {wrong} of {len(p_probes)} lookups answered wrongly")
        res["pg_tcp_over_index"] = res["pg_tcp_lookup_us"] / res["index_lookup_us"]
        res["pg_tcp_over_index_with_hash"] = (res["pg_tcp_lookup_us"] + res["hash_us"]) / (
            res["index_lookup_us"] + res["hash_us"]
        )
    res["target_bytes_per_record_ok"] = res["index_bytes_per_record"] <= 9.0
    if "pg_tcp_over_index" in res:
        res["target_20x_pg_ok"] = res["pg_tcp_over_index"] >= 20.0
    if failures:  # a ratio of wrong answers means nothing
        for key in [k for k in res if "_over_index" in k or k.startswith("target_")]:
            del res[key]
    res["failures"] = failures
    res["headline"] = headline(res)
    return res


def headline(res: dict[str, Any]) -> list[str]:
    """The result in words: the in-process comparison first, then PostgreSQL over TCP."""
    if res.get("failures"):
        return ["INVALID: " + "; ".join(res["failures"])]
    out = [
        f"index {res['index_lookup_us']:.2f} us/lookup, {res['index_bytes_per_record']:.2f} B/record"
    ]
    if "sqlite_over_index" in res:
        out.append(
            f"vs SQLite, both in process: {res['sqlite_lookup_us']:.2f} us, "
            f"{res['sqlite_over_index']:.1f}x"
        )
    if "pg_tcp_over_index" in res:
        out.append(
            f"vs PostgreSQL over TCP on 127.0.0.1 (a loopback round trip per lookup): "
            f"{res['pg_tcp_lookup_us']:.2f} us, {res['pg_tcp_over_index']:.1f}x"
        )
    return out


def format_text(res: dict[str, Any]) -> str:
    """The readable summary: the headline, then every figure."""
    lines = [f"== bench index == {res['records']:,} keys, {res['probes']:,} probes"]
    lines += [f"  {h}" for h in res["headline"]]
    for key, value in res.items():
        if key in ("headline", "failures"):
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else value
        lines.append(f"    {key:<36} {shown}")
    return "\n".join(lines)
