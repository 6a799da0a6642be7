"""`make demo` end to end (a smaller list): exit 0, the expected summary line (offline answers
during the outage included), nothing lost; then its interactive shell, driven through stdin
as a person would type."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from firmware.mrz import make_td3

pytestmark = pytest.mark.slow


def test_demo_script_passes(tmp_path):
    # A document made here, not from the demo's list: "ZZ" numbers are not generated.
    typed = make_td3(document_number="ZZ1234567")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "host_tools.demo",
            "--records",
            "20000",
            "--workdir",
            str(tmp_path / "demo"),
            "--interactive",
        ],
        input="\n".join([*typed, "", "status", "ack", "quit"]) + "\n",
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 0, out[-4000:] + r.stderr[-2000:]
    summary = [x for x in out.splitlines() if x.startswith("demo: ")]
    assert summary == [
        "demo: 8 documents, 3 clear, 1 possible match, 1 unknown, 1 rescan, "
        "2 offline (1 possible match, 1 not listed), 0 lost"
    ]
    # the scan made before the service was up, then both outage scans, re-checked online
    assert re.search(r"scan #1 re-checked online: NO_MATCH\n", out)
    assert re.search(r"re-checked online: POSSIBLE_MATCH \(answered LISTED offline before\)", out)
    assert re.search(r"re-checked online: NO_MATCH \(answered NOT LISTED offline before\)", out)
    assert "the kiosk installed the offline list (20000 records" in out
    assert "alert desk: 2 sealed hit alert(s)" in out  # the online hit and the offline one
    assert re.search(r"agent: RSS [0-9.]+ MB before its offline list", out)
    assert "audit OK" in out
    # The interactive shell: the typed passport is answered, status reports the counters.
    after = out[out.index("== interactive") :]
    assert "=>  shown: CLEAR" in after
    assert re.search(
        r"kiosk screen: \w+; regional \(last report\) answered \d+, refused 0, ready True", after
    )
    assert "acknowledge sent" in after
