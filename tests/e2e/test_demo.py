"""`make demo` end to end (a smaller list): exit 0, the expected summary line, nothing lost."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_script_passes(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "host_tools.demo",
            "--records",
            "20000",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 0, out[-4000:] + r.stderr[-2000:]
    summary = [x for x in out.splitlines() if x.startswith("demo: ")]
    assert summary == ["demo: 6 documents, 3 clear, 1 possible match, 1 unknown, 1 rescan, 0 lost"]
    assert "pending query resolved after the outage: NO_MATCH" in out
    assert re.search(r"agent: RSS [0-9.]+ MB", out)
    assert "audit OK" in out
