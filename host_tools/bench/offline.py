"""Offline-list benchmark: the kiosk's binary fuse filter, next to baselines from the same run.

- **build**: the filter built by the reference C code (``host_tools.offline.fusebuild``)
  from N keyed hashes that already exist (a numpy uint64 array; the regional keeps them
  current as records change, ``host_tools.offline.keyset``), reported apart from hashing
  a store (``builder.hash_store`` over a small generated SQLite store, per record);
- **size and accuracy**: bits per record (target <= 9.1 with 8-bit fingerprints) and the
  false-positive rate on fresh unlisted keys (target <= 0.45 %); every member probed must
  be found;
- **kiosk lookup**: our Python ``FuseFilterFile.contains`` over the mapped file against the
  C library's ``binary_fuse*_contain`` through cffi (the baseline), in interleaved passes,
  each lookup timed alone: p50 and p99, and the ratio; the two must answer alike;
- **resident memory**: a fresh process that maps the list and looks up (releasing pages
  after each lookup, as the agent does) against one that reads it into memory
  (``host_tools.offline.measure.rss_child``); the issue's bound is 5 MB added for a
  24 M-record list (``--kiosk-records 24000000`` or ``--full``);
- **delta**: payload and signed manifest bytes for 10 000 changes (5 000 added, 5 000
  removed) against the N-record base.

Sizes: N = 10 M by default (~300 MB), ``--quick`` 1 M, ``--full`` 100 M (a few GB). A
missed member, a Python answer that differs from the C library's, or a target exceeded
is a failure: ratios are withheld and ``fieldterm bench`` exits 1. ``--corrupt-filter``
zeroes a quarter of the mapped file's fingerprints before probing (a real damaged list)
to show that path.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.offline.fusefile import HEADER_SIZE, FuseFilterFile, FuseHeader
from host_tools.bench.index import make_keys
from host_tools.offline import builder, fusebuild
from host_tools.offline.measure import rss_child

KEY_ID = bytes(8)
MAX_BITS_PER_RECORD = 9.1  # issue 12, 8-bit fingerprints
MAX_FP_PCT = 0.45  # issue 12
MAX_KIOSK_RSS_KB = 5 * 1024  # issue 12, a 24 M-record list mapped
DELTA_CHANGES = 10_000
MAX_BUILD_100M_S = 30  # issue 12, from existing keyed hashes, file bytes included


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, help="keys in the list (10 M; --quick 1 M; --full 100 M)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1 M keys, fewer probes (smoke run)")
    size.add_argument(
        "--full", action="store_true", help="100 M keys and a 24 M kiosk list (a few GB)"
    )
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="fingerprint bits (8)")
    p.add_argument("--fp-probes", type=int, default=1_000_000, help="unlisted keys for the FP rate")
    p.add_argument("--member-probes", type=int, default=200_000, help="members probed (200000)")
    p.add_argument("--lookups", type=int, default=20_000, help="lookups per pass and path (20000)")
    p.add_argument("--passes", type=int, default=3, help="interleaved lookup passes (3)")
    p.add_argument("--store-records", type=int, help="records in the hashed store (200 k)")
    p.add_argument(
        "--kiosk-records", type=int, help="keys of the list whose RSS is measured (default N)"
    )
    p.add_argument("--corrupt-filter", action="store_true", help="probe a damaged filter file")
    p.add_argument("--seed", type=int, default=1)


def sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    """``(N, store records, kiosk list records)`` for the options given."""
    n = args.records or (1_000_000 if args.quick else 100_000_000 if args.full else 10_000_000)
    store = args.store_records or (20_000 if args.quick else 200_000)
    kiosk = args.kiosk_records or (24_000_000 if args.full else n)
    return int(n), int(store), int(kiosk)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _timed_each(probe: Any, keys: list[int]) -> tuple[list[float], list[bool]]:
    """Each lookup timed alone (µs), and the answers."""
    clock = time.perf_counter_ns
    times: list[float] = []
    answers: list[bool] = []
    for k in keys:
        t0 = clock()
        a = probe(k)
        times.append((clock() - t0) / 1000)
        answers.append(bool(a))
    return times, answers


def bench_hash_store(work: Path, records: int, seed: int) -> dict[str, Any]:
    """Hash a generated SQLite store of ``records`` under a list key, per record."""
    from host_tools.sltd.samples import generate_store  # noqa: PLC0415
    from host_tools.sltd.sqlitestore import SqliteStore  # noqa: PLC0415

    path = work / "store.db"
    generate_store(path, records=records, seed=seed, progress=False)
    store = SqliteStore(path)
    try:
        t0 = time.perf_counter()
        _, keys = builder.hash_store(store, b"\x42" * 32)
        s = time.perf_counter() - t0
    finally:
        store.close()
    return {
        "store_records": int(keys.size),
        "hash_store_s": round(s, 3),
        "hash_store_us_per_record": round(s / max(keys.size, 1) * 1e6, 3),
    }


def _lookups(
    path: Path, cf: fusebuild.CFilters, bits: int, probes: list[int], passes: int
) -> dict[str, Any]:
    lib, _ = fusebuild._c()
    contain = getattr(lib, f"binary_fuse{bits}_contain")
    shard, shift = cf.filters, 64 - cf.shard_bits  # the key's shard: its top bits
    py_t: list[float] = []
    c_t: list[float] = []
    by_pass = []
    disagree = 0
    with FuseFilterFile(path) as f:
        for _ in range(passes):  # interleaved: a change of load falls on both paths
            pt, pa = _timed_each(f.contains, probes)
            ct, ca = _timed_each(lambda k: contain(k, shard[k >> shift]), probes)
            disagree += sum(a != b for a, b in zip(pa, ca, strict=True))
            py_t += pt
            c_t += ct
            by_pass.append(round(statistics.median(pt) / statistics.median(ct), 2))
    out: dict[str, Any] = {
        "python_mmap_p50_us": round(_pct(py_t, 0.5), 3),
        "python_mmap_p99_us": round(_pct(py_t, 0.99), 3),
        "c_cffi_p50_us": round(_pct(c_t, 0.5), 3),
        "c_cffi_p99_us": round(_pct(c_t, 0.99), 3),
        "lookups": len(py_t),
        "disagreements": disagree,
        "p50_ratio_by_pass": by_pass,
    }
    out["python_over_c_p50"] = round(out["python_mmap_p50_us"] / out["c_cffi_p50_us"], 2)
    out["python_over_c_p99"] = round(out["python_mmap_p99_us"] / out["c_cffi_p99_us"], 2)
    return out


def _corrupt(path: Path) -> None:
    """Zero the first quarter of the fingerprints in place (a damaged list, not a mock)."""
    size = path.stat().st_size
    start = FuseHeader.unpack(path.read_bytes()[: HEADER_SIZE + 32 * 4096]).table_end
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(bytes((size - start) // 4))


def _rss(kiosk_path: Path) -> dict[str, Any]:
    mapped = rss_child(kiosk_path, "map", 1000)
    loaded = rss_child(kiosk_path, "load", 0)
    return {
        "map_added_kb": mapped["VmRSS_after_release_kb"],
        "map_added_kb_before_release": mapped["VmRSS_added_kb"],
        "map_pages_kb_peak_one_lookup": mapped["map_rss_kb_peak_one_lookup_then_release"],
        "load_added_kb": loaded["VmRSS_added_kb"],
        "file_bytes": kiosk_path.stat().st_size,
    }


def unlisted(keys: np.ndarray, count: int, r: np.random.Generator) -> np.ndarray:
    """Up to ``count`` fresh random keys not in sorted ``keys`` (a collision is ~n/2^64),
    without the copies of ``np.setdiff1d`` over the whole list."""
    fresh = np.unique(r.integers(0, 2**64 - 1, count, dtype=np.uint64, endpoint=True))
    pos = np.minimum(np.searchsorted(keys, fresh), keys.size - 1)
    out = fresh[keys[pos] != fresh]
    r.shuffle(out)
    return out


def _delta(keys: np.ndarray, seed: int) -> dict[str, Any]:
    r = np.random.default_rng([seed, 12])
    half = DELTA_CHANGES // 2
    out = np.unique(r.integers(0, keys.size, half * 2))[:half]  # positions removed
    added = np.sort(unlisted(keys, half, r))
    keep = np.ones(keys.size, dtype=bool)
    keep[out] = False
    new = np.sort(np.concatenate([keys[keep], added]))
    del keep
    t0 = time.perf_counter()
    plus, minus = builder.sorted_diff(keys, new)  # what a restarted regional does once
    t1 = time.perf_counter()
    d = builder.build_delta(
        plus, minus, records=int(new.size), region="bench", base_version=1, version=2,
        sign_key=Ed25519PrivateKey.generate(), key_id=KEY_ID,
    )  # fmt: skip
    return {
        "added": d.manifest.filter["added"],
        "removed": d.manifest.filter["removed"],
        "payload_bytes": len(d.payload),
        "manifest_bytes": len(d.manifest_bytes),
        "diff_of_arrays_s": round(t1 - t0, 3),
        "build_s": round(time.perf_counter() - t1, 3),
    }


def _peak_mb() -> float:
    """Peak RSS of this process so far (under ``bench all``, of every benchmark run)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, store_n, kiosk_n = sizes(args)
    tmp = Path(tempfile.mkdtemp(prefix="fieldterm-bench-offline-"))
    try:
        res = _run(args, n, store_n, kiosk_n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["peak_rss_mb"] = _peak_mb()
    return res


def _run(
    args: argparse.Namespace, n: int, store_n: int, kiosk_n: int, work: Path
) -> dict[str, Any]:
    quick = args.quick
    bits = args.bits
    res: dict[str, Any] = {"records": n, "fingerprint_bits": bits}
    keys = make_keys(n, args.seed)
    res["hash_store"] = bench_hash_store(work, store_n, args.seed)
    path = work / "filter.ftol"
    failures: list[str] = []
    t0 = time.perf_counter()
    with fusebuild.c_filters(keys, bits) as cf:
        t1 = time.perf_counter()
        path.write_bytes(cf.file_bytes(KEY_ID))
        t2 = time.perf_counter()
        nbytes = path.stat().st_size
        res["build"] = {
            "populate_s": round(t1 - t0, 3),
            "write_s": round(t2 - t1, 3),
            "build_s": round(t2 - t0, 3),
            "s_per_million": round((t1 - t0) / n * 1e6, 3),
            "shards": len(cf.filters),
            "bytes": nbytes,
        }
        res["bits_per_record"] = round(nbytes * 8 / n, 3)
        if args.corrupt_filter:
            _corrupt(path)
        r = np.random.default_rng([args.seed, 13])
        fp_n = min(args.fp_probes, 200_000) if quick else args.fp_probes
        absent = unlisted(keys, fp_n, r)
        member_n = min(args.member_probes, keys.size)
        members = [int(k) for k in keys[r.integers(0, keys.size, member_n)]]
        with FuseFilterFile(path) as f:  # the kiosk's answers are what must hold
            missed = sum(not f.contains(k) for k in members)
            fp = sum(f.contains(int(k)) for k in absent)
        c_fp = sum(cf.contains(int(k)) for k in absent)
        res["false_positive_pct"] = round(100 * fp / absent.size, 4)
        res["false_positive_pct_c"] = round(100 * c_fp / absent.size, 4)
        res["fp_probes"] = int(absent.size)
        res["members_probed"] = member_n
        res["members_missed"] = missed
        lookups = min(args.lookups, 5_000) if quick else args.lookups
        probes = members[: lookups // 2] + [int(k) for k in absent[: lookups - lookups // 2]]
        np.random.default_rng([args.seed, 14]).shuffle(probes)
        res["lookup"] = _lookups(path, cf, bits, probes, args.passes)
    if kiosk_n == n:
        res["rss"] = {"records": n, **_rss(path)}
    else:
        kpath = work / "kiosk.ftol"
        kkeys = make_keys(kiosk_n, args.seed + 1)
        kpath.write_bytes(fusebuild.filter_bytes(kkeys, bits=bits, key_id=KEY_ID))
        del kkeys
        res["rss"] = {"records": kiosk_n, **_rss(kpath)}
    res["peak_rss_mb_before_delta"] = _peak_mb()
    res["delta"] = _delta(keys, args.seed)
    del keys

    if missed:
        failures.append(f"{missed} of {member_n} members missed by the kiosk's lookup")
    if res["lookup"]["disagreements"]:
        failures.append(
            f"Python lookup disagreed with the C library {res['lookup']['disagreements']} times"
        )
    if bits == 8 and res["bits_per_record"] > MAX_BITS_PER_RECORD:
        failures.append(f"{res['bits_per_record']} bits per record > {MAX_BITS_PER_RECORD}")
    if bits == 8 and res["false_positive_pct"] > MAX_FP_PCT:
        failures.append(f"false positives {res['false_positive_pct']} % > {MAX_FP_PCT} %")
    if kiosk_n >= 24_000_000 and res["rss"]["map_added_kb"] > MAX_KIOSK_RSS_KB:
        failures.append(f"mapped list adds {res['rss']['map_added_kb']} kB > {MAX_KIOSK_RSS_KB}")
    if n >= 100_000_000 and res["build"]["build_s"] > MAX_BUILD_100M_S:
        failures.append(f"100 M build took {res['build']['build_s']} s > {MAX_BUILD_100M_S} s")
    res["ratios"] = None if failures else {
        "lookup_python_over_c_p50": res["lookup"]["python_over_c_p50"],
        "lookup_python_over_c_p99": res["lookup"]["python_over_c_p99"],
        "rss_map_over_load": round(
            res["rss"]["map_added_kb"] / max(res["rss"]["load_added_kb"], 1), 4
        ),
    }  # fmt: skip
    res["valid"] = not failures
    res["failures"] = failures
    return res


def format_text(res: dict[str, Any]) -> str:
    """The readable summary."""
    b, lk, rs, d, hs = res["build"], res["lookup"], res["rss"], res["delta"], res["hash_store"]
    lines = [
        f"== bench offline == {res['records']:,} keys, {res['fingerprint_bits']}-bit fingerprints"
        + ("" if res["valid"] else "  INVALID: " + "; ".join(res["failures"])),
        f"  build from keyed hashes   {b['build_s']:.2f} s: populate {b['populate_s']:.2f} s"
        f" ({b['s_per_million']:.3f} s/M, {b['shards']} shards) + file {b['write_s']:.2f} s,"
        f" {b['bytes']:,} bytes",
        f"  hash a store              {hs['hash_store_us_per_record']:.2f} us/record"
        f" ({hs['store_records']:,} records, {hs['hash_store_s']:.2f} s)",
        f"  bits per record           {res['bits_per_record']:.3f} (target <= {MAX_BITS_PER_RECORD})",
        f"  false positives           {res['false_positive_pct']:.3f} % of {res['fp_probes']:,}"
        f" unlisted (target <= {MAX_FP_PCT} %); members missed {res['members_missed']}"
        f" of {res['members_probed']:,}",
        f"  lookup p50 / p99          Python mmap {lk['python_mmap_p50_us']:.2f} /"
        f" {lk['python_mmap_p99_us']:.2f} us, C cffi {lk['c_cffi_p50_us']:.2f} /"
        f" {lk['c_cffi_p99_us']:.2f} us: {lk['python_over_c_p50']}x / {lk['python_over_c_p99']}x"
        f" (p50 ratio by pass {lk['p50_ratio_by_pass']}; {lk['lookups']:,} lookups a path)",
        f"  RSS added ({rs['records']:,} keys) mapped + released {rs['map_added_kb']} kB"
        f" (peak one lookup {rs['map_pages_kb_peak_one_lookup']} kB), loaded"
        f" {rs['load_added_kb']:,} kB",
        f"  delta, {d['added']:,} added + {d['removed']:,} removed: payload"
        f" {d['payload_bytes']:,} bytes, manifest {d['manifest_bytes']:,} bytes",
        f"  peak RSS of this process  {res['peak_rss_mb']} MB",
    ]
    return "\n".join(lines)
