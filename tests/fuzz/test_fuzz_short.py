"""A short, bounded fuzz run of every harness as part of ``make test``.

The long run is ``make fuzz``. Each harness gets a few seconds and a memory limit; a crash,
an unexpected exception, a hang (libFuzzer ``-timeout``) or an out-of-memory fails the test.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.fuzz.run import harnesses, run_harness
from tests.support.require import need

SECONDS = 10


@pytest.mark.slow
@pytest.mark.parametrize("path", harnesses(), ids=lambda p: p.stem)
def test_harness_runs_clean_for_a_short_while(path):
    if importlib.util.find_spec("atheris") is None:
        need("fuzz", "atheris is not installed (pip install -e '.[dev]' on x86_64)")
    proc = run_harness(path, SECONDS, rss_limit_mb=1024, input_timeout=5)
    assert proc.returncode == 0, proc.stderr[-4000:]
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done, proc.stderr[-2000:]
    assert int(done.group(1)) > 100  # it really exercised the target
