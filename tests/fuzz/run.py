"""Run every ``tests/fuzz/fuzz_*.py`` atheris harness, bounded, and print what each did
(``make fuzz``).

Each harness runs as its own subprocess on a fresh corpus directory, with libFuzzer's
``-rss_limit_mb`` and a per-input ``-timeout`` (a hang is a failure), for ``--seconds``
or for exactly ``--inputs`` inputs (``-runs``). Per harness it prints one row: inputs,
crashes, exec/s, RSS when fuzzing began (libFuzzer's ``INITED`` line), peak RSS, the growth
between them, and the growth over the second half of the run (a leak keeps growing there;
a bounded harness is flat once its corpus has settled). ``--live N`` then runs the live
fuzz (:mod:`host_tools.chaos.fuzz_mqtt`: N mutated payloads through a real broker to a
real regional). ``--jobs J`` runs J of them at once (the live fuzz then in a subprocess
beside the harnesses), the slowest first, so that on a machine whose cores are partly busy
(``make chaos`` runs the fuzzers at ``nice 19`` beside the fault scenarios) the idle time
goes to fuzzing. Exit status 0 only if every harness finished without a crash.

    python -m tests.fuzz.run --seconds 60
    python -m tests.fuzz.run --inputs 1000000 --live 1000000 --jobs 2   # the issue-14 figures
    python -m tests.fuzz.run --only ticket --inputs 20000
    python tests/fuzz/fuzz_envelope.py CRASH_FILE               # replay one input
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_STATUS = re.compile(r"^#(\d+)\s+(INITED|pulse|NEW|REDUCE|DONE)\b.*?\brss: (\d+)Mb", re.M)


def harnesses() -> list[Path]:
    """The harness files, in name order."""
    return sorted(HERE.glob("fuzz_*.py"))


#: Inputs per second each harness ran alone here (2026-12-03): the slowest starts first.
RATE = {"framers": 1_000, "ticket": 2_000, "live": 3_800, "mrz": 5_000, "envelope": 8_000}


def run_harness(
    path: Path,
    seconds: int | None = 60,
    rss_limit_mb: int = 2048,
    input_timeout: int = 10,
    *,
    inputs: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one harness for ``seconds``, or for ``inputs`` inputs (then ``seconds``, if
    given, is an upper bound too); stdout and stderr are captured as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    limit = seconds if seconds is not None else 0
    with tempfile.TemporaryDirectory(prefix=f"{path.stem}-") as corpus:
        cmd = [
            sys.executable,
            str(path),
            corpus,
            f"-max_total_time={limit}",
            f"-rss_limit_mb={rss_limit_mb}",
            f"-timeout={input_timeout}",
            "-print_final_stats=1",
            f"-artifact_prefix={tempfile.gettempdir()}/{path.stem}-",
        ]
        if inputs is not None:
            cmd.append(f"-runs={inputs}")
        # with -runs, allow for 100 inputs/s at least (the slowest harness does ~2000)
        wall = max(limit, inputs // 100) if inputs is not None else limit
        return subprocess.run(
            cmd,
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=wall * 3 + 120,
        )


@dataclass(frozen=True)
class Stats:
    """What one harness run did, from libFuzzer's output."""

    inputs: int
    crashes: int
    exec_per_s: float
    rss_start_mb: int
    rss_peak_mb: int
    rss_second_half_mb: int  # growth from the status line nearest half the inputs to the end
    artifact: str | None

    @property
    def rss_growth_mb(self) -> int:
        return self.rss_peak_mb - self.rss_start_mb


def stats(stderr: str, seconds: float) -> Stats:
    """Parse a harness's libFuzzer output (``seconds``: its wall time)."""
    done = re.search(r"Done (\d+) runs", stderr)
    units = re.search(r"stat::number_of_executed_units:\s+(\d+)", stderr)
    lines = [(int(m.group(1)), int(m.group(3))) for m in _STATUS.finditer(stderr)]
    # interrupted (SIGINT), libFuzzer prints neither: the last status line says how far
    n = (
        int(done.group(1))
        if done
        else int(units.group(1))
        if units
        else max(lines)[0]
        if lines
        else 0
    )
    peak = re.search(r"stat::peak_rss_mb:\s+(\d+)", stderr)
    start = lines[0][1] if lines else 0
    peak_mb = int(peak.group(1)) if peak else max((r for _, r in lines), default=0)
    half = min(lines, key=lambda x: abs(x[0] - n / 2))[1] if lines else start
    end = lines[-1][1] if lines else start
    art = re.search(r"Test unit written to (\S+)", stderr)
    crashed = bool(art) or "ERROR: libFuzzer" in stderr or "Uncaught Python exception" in stderr
    return Stats(
        inputs=n,
        crashes=int(crashed),
        exec_per_s=n / seconds if seconds > 0 else 0.0,
        rss_start_mb=start,
        rss_peak_mb=peak_mb,
        rss_second_half_mb=end - half,
        artifact=art.group(1) if art else None,
    )


HEADER = (
    f"{'harness':<16} {'inputs':>10} {'crashes':>7} {'exec/s':>8} "
    f"{'RSS start':>9} {'peak':>6} {'growth':>6} {'2nd half':>8}"
)


def row(name: str, s: Stats) -> str:
    return (
        f"{name:<16} {s.inputs:>10,} {s.crashes:>7} {s.exec_per_s:>8,.0f} "
        f"{s.rss_start_mb:>7}MB {s.rss_peak_mb:>4}MB {s.rss_growth_mb:>4}MB "
        f"{s.rss_second_half_mb:>6}MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60, help="time per harness (default 60)")
    parser.add_argument(
        "--inputs", type=int, help="exactly this many inputs per harness (overrides --seconds)"
    )
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit per harness")
    parser.add_argument("--only", help="run only harnesses whose name contains this text")
    parser.add_argument(
        "--live",
        type=int,
        default=0,
        metavar="N",
        help="then the live fuzz: N payloads through a real broker to a real regional "
        "(python -m host_tools.chaos.fuzz_mqtt --help); 0: none (default)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="run J harnesses (and the live fuzz) at once, the slowest first (default 1)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    paths = [p for p in harnesses() if not args.only or args.only in p.name]
    budget = f"{args.inputs:,} inputs" if args.inputs else f"{args.seconds} s"
    seconds = None if args.inputs else args.seconds

    def one(path: Path) -> tuple[str, bool]:
        name = path.stem.removeprefix("fuzz_")
        print(f"== {name}: {budget}", flush=True)
        t0 = time.monotonic()
        proc = run_harness(path, seconds, args.rss_limit_mb, inputs=args.inputs)
        s = stats(proc.stderr, time.monotonic() - t0)
        text = row(name, s)
        print(text, flush=True)
        if proc.returncode != 0 or s.crashes:
            print(f"{name}:\n{proc.stderr[-4000:]}", file=sys.stderr, flush=True)
            if s.artifact:
                print(f"{name}: crashing input {s.artifact}; replay: {path} {s.artifact}")
            return text, False
        return text, True

    def live() -> tuple[str, bool]:
        cmd = [sys.executable, "-m", "host_tools.chaos.fuzz_mqtt", "--payloads", str(args.live)]
        if args.jobs == 1:
            return "", subprocess.run(cmd, cwd=ROOT, check=False).returncode == 0
        # beside the harnesses: its report is printed whole when it ends
        proc = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True)
        print(f"== live: {args.live:,} payloads\n{proc.stdout}{proc.stderr}", flush=True)
        return "", proc.returncode == 0

    names = {p.stem.removeprefix("fuzz_"): p for p in paths}
    order = sorted([*names, *(["live"] if args.live else [])], key=lambda n: RATE.get(n, 0))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        work = {n: pool.submit(live) if n == "live" else pool.submit(one, names[n]) for n in order}
    results = {n: f.result() for n, f in work.items()}
    rows = [results[n][0] for n in names if n in results]
    failed = [n for n, (_, ok) in results.items() if not ok]
    if rows:
        print("\n" + HEADER + "\n" + "\n".join(rows), flush=True)
    if failed:
        print("fuzz failures: " + ", ".join(sorted(failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
