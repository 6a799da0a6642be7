"""Audit-log benchmark: what a kiosk's start costs with a long audit log (issue 13, part 4).

The kiosk's audit log grows by a few lines per scan and is never trimmed on the card;
before issue 13 a start read the whole file and kept every verdict's query id, so 180 k
lines took more than the unit's 256 MB and the agent died after about six months. Now the
log is a chain of segments and a start reads only the newest one's tail.

Measured, on a log of N entries (1 M by default, ``--quick`` 100 k) built in a temporary
directory with the real :class:`~firmware.agent.audit.AuditLog` (fsync off while building,
4 MiB segments as on the kiosk):

- **start**: in a fresh process, opening the log (finding the chain head) and then
  :meth:`~firmware.agent.audit.AuditLog.verdicts_among` for ten pending queries accepted
  near the end (what the agent's restore does): wall time and resident memory added
  (VmRSS after minus before, and the peak VmHWM minus VmRSS before). Targets: under 2 s
  and under 10 MB.
- **verify**: ``verify_file`` over every segment (the auditor's tool, streamed): time and
  memory added; no target, reported.

Run: ``python -m host_tools.bench.audit [--entries N | --quick] [--json]``. Exit status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

KEY = bytes(range(32))
START_S = 2.0
START_MB = 10.0

#: Builds the log with the kiosk's own AuditLog, in a child process (host tools never
#: import the kiosk agent: tests/test_layering.py). Prints the pending ids as JSON.
_BUILD = textwrap.dedent(
    """
    import json, sys
    from firmware.agent.audit import AuditLog

    path, key, entries = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
    wall = iter(range(1_700_000_000, 1_800_000_000))
    pending = {}
    with AuditLog(path, key, wall=lambda: float(next(wall)), fsync=False) as log:
        n = 0
        while log.head.seq < entries:
            n += 1
            qid = n.to_bytes(16, "big")
            if log.head.seq % 5000 == 0:
                log.append("start", outcome="pending=0")
            log.append("accepted", query_id=qid)
            if entries - log.head.seq < 40 and len(pending) < 10:
                pending[qid.hex()] = log.head.seq - 1  # left pending: no verdict
                continue
            log.append("verdict", query_id=qid, outcome="NO_MATCH", list_version="7")
        # and one pending whose verdict was written just before a crash
        qid = (n + 1).to_bytes(16, "big")
        pending[qid.hex()] = log.head.seq
        log.append("accepted", query_id=qid)
        log.append("verdict", query_id=qid, outcome="NO_MATCH", list_version="7")
    print(json.dumps(pending))
    """
)

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    def rss():
        out = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
        return out

    from firmware.agent import audit  # imported before the baseline
    mode, path, key, wanted = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4]
    base = rss()["VmRSS"]
    t0 = time.perf_counter()
    if mode == "start":
        log = audit.AuditLog(path, key)
        head = log.head.seq
        q = {bytes.fromhex(x): int(s) for x, s in json.loads(wanted).items()}
        found = len(log.verdicts_among(q))
        log.close()
        extra = {"head_seq": head, "verdicts_found": found}
    else:
        rep = audit.verify_file(path, key)
        extra = {"ok": rep.ok, "entries": rep.entries, "segments": rep.segments}
    dt = time.perf_counter() - t0
    after = rss()
    print(json.dumps({"seconds": dt, "rss_added_mb": after["VmRSS"] - base,
                      "peak_added_mb": after["VmHWM"] - base, **extra}))
    """
)


def _python(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", *args], check=True, capture_output=True, text=True, timeout=900
    )
    return json.loads(out.stdout)


def build(path: Path, entries: int) -> dict[str, int]:
    """A log of ``entries`` lines like a kiosk's (accepted + verdict per scan, a start now
    and then); returns the query ids (hex) left pending near the end, with their audit
    seq: ten without a verdict and one whose verdict was written just before a crash."""
    result: dict[str, int] = _python(_BUILD, str(path), KEY.hex(), str(entries))
    return result


def child(mode: str, path: Path, wanted: dict[str, int]) -> dict[str, Any]:
    """``start`` or ``verify`` measured in a fresh process."""
    result: dict[str, Any] = _python(_CHILD, mode, str(path), KEY.hex(), json.dumps(wanted))
    return result


def _segments(active: Path) -> list[Path]:
    """The log's files: the full segments ``audit-*.log`` and the active ``audit.log``."""
    return [*sorted(active.parent.glob(f"{active.stem}-*{active.suffix}")), active]


def run(entries: int) -> dict[str, Any]:
    """Build, then measure a start and a verify in fresh processes."""
    tmp = Path(tempfile.mkdtemp(prefix="fieldterm-bench-audit-"))
    try:
        path = tmp / "audit.log"
        t0 = time.perf_counter()
        wanted = build(path, entries)
        built = time.perf_counter() - t0
        segs = _segments(path)
        size = sum(p.stat().st_size for p in segs)
        start = child("start", path, wanted)
        verify = child("verify", path, {})
        return {
            "entries": entries,
            "segments": len(segs),
            "log_mb": round(size / 2**20, 1),
            "build_s": round(built, 1),
            "start": start,
            "verify": verify,
            "targets": {"start_s": START_S, "start_mb": START_MB},
            "ok": start["seconds"] < START_S
            and max(start["rss_added_mb"], start["peak_added_mb"]) < START_MB
            and start["verdicts_found"] == 1
            and verify["ok"],
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.bench.audit", description=__doc__)
    ap.add_argument("--entries", type=int, default=1_000_000, help="log length (1 M)")
    ap.add_argument("--quick", action="store_true", help="100 000 entries")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    entries = 100_000 if args.quick else args.entries
    res = run(entries)
    if args.json:
        print(json.dumps(res))
    else:
        s, v = res["start"], res["verify"]
        print(
            f"audit log: {res['entries']} entries, {res['segments']} segments, "
            f"{res['log_mb']} MB (built in {res['build_s']} s)\n"
            f"start (head + restore scan): {s['seconds'] * 1000:.1f} ms, "
            f"+{s['rss_added_mb']:.2f} MB resident (peak +{s['peak_added_mb']:.2f} MB); "
            f"targets < {START_S} s, < {START_MB} MB\n"
            f"verify (all segments, streamed): {v['seconds']:.1f} s, "
            f"+{v['rss_added_mb']:.2f} MB resident (peak +{v['peak_added_mb']:.2f} MB), "
            f"ok={v['ok']}\n"
            f"{'OK' if res['ok'] else 'FAILED'}"
        )
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
