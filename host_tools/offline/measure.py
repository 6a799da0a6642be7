"""Offline-list figures on this machine: build time, size, false positives, lookup time
and the resident memory a mapped list adds (for the closing note and, later, make bench).

    .venv/bin/python -m host_tools.offline.measure --keys 10000000 --bits 8

Keys are random 64-bit values (what keyed hashes look like); unlisted probes are fresh
random values, so a "yes" for one of them is a false positive (a collision with a member
has probability n/2^64). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware.offline.fusefile import FuseFilterFile
from host_tools.offline import fusebuild

KEY_ID = bytes(8)


def rss_child(path: Path, mode: str, lookups: int) -> dict[str, float]:
    """RSS figures (kB) of a fresh process that maps (``"map"``: looks up ``lookups`` keys,
    then with ``release_pages`` after each, as the agent does), reads into memory (``"load"``)
    or deserializes into the C library (``"c"``) the filter file at ``path``."""
    code = f"""
import json, random, sys
from pathlib import Path
def rss():
    out = {{}}
    for line in Path('/proc/self/status').read_text().splitlines():
        k = line.split(':')[0]
        if k in ('VmRSS', 'RssAnon', 'RssFile'):
            out[k] = int(line.split()[1])
    return out
def mrss():  # resident kB of the filter's mapping (exact, from smaps)
    total, inside = 0, False
    for line in Path('/proc/self/smaps').read_text().splitlines():
        head = line.split()
        if head and '-' in head[0] and len(head) >= 5:
            inside = line.endswith({str(path)!r})
        elif inside and line.startswith('Rss:'):
            total += int(head[1])
    return total
from firmware.offline.fusefile import FuseFilterFile
rng = random.Random(1)
before = rss()
if {mode!r} == 'map':
    f = FuseFilterFile({str(path)!r})
    hits = sum(f.contains(rng.getrandbits(64)) for _ in range({lookups}))
    after = rss()
    map_after = mrss()
    f.release_pages()
    released = rss()
    released['map_after'] = map_after
    released['map_released'] = mrss()
    import time
    t = time.perf_counter()
    for _ in range(2000):
        f.contains(rng.getrandbits(64))
        f.release_pages()
    scan_us = (time.perf_counter() - t) / 2000 * 1e6
    peak = 0
    for _ in range(200):  # RSS between a lookup and its release: the most a scan adds
        f.contains(rng.getrandbits(64))
        peak = max(peak, mrss())
        f.release_pages()
    released['scan_us'] = scan_us
    released['peak_added_kb'] = peak
elif {mode!r} == 'load':
    data = Path({str(path)!r}).read_bytes()
    after = rss(); released = after
else:
    from pyfusefilter._xorfilter import ffi, lib
    from firmware.offline.fusefile import FuseHeader
    import struct
    data = Path({str(path)!r}).read_bytes()
    h = FuseHeader.unpack(data)
    bits = h.fingerprint_bits
    filters = []
    # each shard as the C serialization (seed, size, lengths, fingerprints), deserialized
    for s, at in zip(h.shards, h.offsets()):
        blob = struct.pack('<QIIIII', s.seed, s.size, s.segment_length, s.segment_count,
                           s.segment_count_length, s.array_length)
        blob += data[at:at + s.array_length * bits // 8]
        f = ffi.new(f'binary_fuse{{bits}}_t *')
        buf = ffi.from_buffer(blob)
        assert getattr(lib, f'binary_fuse{{bits}}_deserialize')(f, buf)
        filters.append(f)
        del buf, blob
    del data
    after = rss(); released = after
out = {{k + '_added_kb': after[k] - before[k] for k in before}}
out |= {{k + '_after_release_kb': released[k] - before[k] for k in before}}
if 'scan_us' in released:
    out['lookup_plus_release_us'] = round(released['scan_us'], 2)
    out['map_rss_kb_after_lookups'] = released['map_after']
    out['map_rss_kb_after_release'] = released['map_released']
    out['map_rss_kb_peak_one_lookup_then_release'] = released['peak_added_kb']
print(json.dumps(out))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out))


def measure(n: int, bits: int, probes: int, py_probes: int) -> dict[str, Any]:
    rng = np.random.default_rng(2026)
    keys = np.unique(rng.integers(0, 2**64, size=n, dtype=np.uint64))
    absent = rng.integers(0, 2**64, size=probes, dtype=np.uint64)
    result: dict[str, Any] = {"keys": int(keys.size), "fingerprint_bits": bits}
    with tempfile.TemporaryDirectory(prefix="ft-offline-measure-") as tmp:
        path = Path(tmp) / "f.ftol"
        t0 = time.perf_counter()
        with fusebuild.c_filters(keys, bits) as cf:
            t1 = time.perf_counter()
            data = cf.file_bytes(KEY_ID)
            path.write_bytes(data)
            t2 = time.perf_counter()
            c_fp = sum(cf.contains(int(k)) for k in absent)
            sample = absent[:py_probes]
            t3 = time.perf_counter()
            c_ans = [cf.contains(int(k)) for k in sample]
            c_us = (time.perf_counter() - t3) / len(sample) * 1e6
        result.update(
            populate_s=round(t1 - t0, 3),
            file_write_s=round(t2 - t1, 3),
            bytes=len(data),
            bits_per_record=round(len(data) * 8 / keys.size, 3),
            false_positive_pct=round(100 * c_fp / probes, 4),
            fp_probes=probes,
        )
        with FuseFilterFile(path) as f:
            ints = [int(k) for k in sample]
            t4 = time.perf_counter()
            py_ans = [f.contains(k) for k in ints]
            py_us = (time.perf_counter() - t4) / len(ints) * 1e6
            member_miss = sum(not f.contains(int(k)) for k in keys[:py_probes])
        result.update(
            lookup_us_python_mmap=round(py_us, 3),
            lookup_us_c_cffi=round(c_us, 3),
            python_agrees_with_c=py_ans == c_ans,
            members_missed=member_miss,
            lookup_probes=len(ints),
        )
        del data, keys
        for mode in ("map", "load", "c"):
            result[f"rss_{mode}"] = rss_child(path, mode, 1000 if mode == "map" else 0)
        result["rss_map_100k_lookups"] = rss_child(path, "map", 100_000)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, choices=(8, 16), default=8)
    p.add_argument("--probes", type=int, default=1_000_000, help="unlisted keys for the FP rate")
    p.add_argument("--lookups", type=int, default=200_000, help="keys timed per lookup path")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.keys, a.bits, a.probes, a.lookups), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
