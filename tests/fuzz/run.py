"""Run every ``tests/fuzz/fuzz_*.py`` atheris harness for a bounded time (``make fuzz``).

Each harness runs as its own subprocess with libFuzzer's ``-max_total_time``,
``-rss_limit_mb`` and a per-input ``-timeout`` (a hang is a failure), on a fresh corpus
directory. Exit status 0 only if every harness finished without a crash.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def harnesses() -> list[Path]:
    """The harness files, in name order."""
    return sorted(HERE.glob("fuzz_*.py"))


def run_harness(
    path: Path, seconds: int, rss_limit_mb: int = 2048, input_timeout: int = 10
) -> subprocess.CompletedProcess[str]:
    """Run one harness for ``seconds``; stdout and stderr are captured as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix=f"{path.stem}-") as corpus:
        cmd = [
            sys.executable,
            str(path),
            corpus,
            f"-max_total_time={seconds}",
            f"-rss_limit_mb={rss_limit_mb}",
            f"-timeout={input_timeout}",
            "-print_final_stats=1",
            f"-artifact_prefix={tempfile.gettempdir()}/{path.stem}-",
        ]
        return subprocess.run(
            cmd,
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds * 3 + 120,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="time per harness (default 60)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit per harness")
    parser.add_argument("--only", help="run only harnesses whose name contains this text")
    args = parser.parse_args(argv)
    failed = []
    for path in harnesses():
        if args.only and args.only not in path.name:
            continue
        print(f"== {path.name}: {args.seconds} s", flush=True)
        proc = run_harness(path, args.seconds, args.rss_limit_mb)
        tail = [ln for ln in proc.stderr.splitlines() if ln.startswith(("Done", "stat::"))]
        print("\n".join(tail[-6:]), flush=True)
        if proc.returncode != 0:
            failed.append(path.name)
            print(proc.stderr[-4000:], file=sys.stderr)
    if failed:
        print("fuzz failures: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
