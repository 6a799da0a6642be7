"""`make demo` end to end (a smaller list): exit 0, the expected summary line (offline answers
during the outage included), nothing lost; the supervisor's panel (MicroPython) following
the kiosk; then its interactive shell, driven through stdin as a person would type."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from firmware.mrz import make_td3
from host_tools.demo.panel import micropython
from tests.support.require import need

pytestmark = pytest.mark.slow
PANEL = "      panel | lane 1 kiosk-001: "


def _panel_after(lines: list[str], i: int) -> str:
    """The first panel line after line ``i`` (before the next step or shown answer)."""
    for line in lines[i + 1 :]:
        if line.startswith(PANEL):
            return line[len(PANEL) :]
        if line.startswith(("== [", "  =>  shown: ")):
            break
    return "(none)"


def test_demo_script_passes(tmp_path):
    if micropython() is None:
        need("micropython", "no micropython in the venv (make setup): the demo has no panel")
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
        input="\n".join([*typed, "", "status", "press", "ack", "quit"]) + "\n",
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
    # the panel's lane follows the kiosk's screen at every step
    lines = out.splitlines()
    assert "  ok  annunciator panel-1 (MicroPython unix port" in out
    shown = [(i, x.split("shown: ")[1]) for i, x in enumerate(lines) if "=>  shown: " in x]
    follows = [(what, _panel_after(lines, i)) for i, what in shown]
    assert follows[:7] == [
        ("UNKNOWN", "IDLE, steady on"),  # the first scan, before the service is up
        ("CLEAR", "IDLE, steady on"),
        ("POSSIBLE MATCH", "CALL, fast blink, chiming"),
        ("CLEAR", "IDLE, steady on"),
        ("RESCAN", "IDLE, steady on"),
        ("CLEAR", "IDLE, steady on"),
        ("POSSIBLE MATCH (offline list) (list 0.0 h old)", "DOWN, double flash"),  # outage
    ], follows
    assert follows[-1] == ("CLEAR", "IDLE, steady on")  # the one typed in the shell
    # the supervisor acknowledges on the panel: acked there, "on the way" on the kiosk;
    # the officer's acknowledge then ends the call
    call = next(i for i, x in enumerate(lines) if x.endswith("CALL, fast blink, chiming"))
    story = [x.strip() for x in lines[call:] if x.startswith(("  =>  ", PANEL, "      panel"))]
    assert story[:5] == [
        "panel | lane 1 kiosk-001: CALL, fast blink, chiming",
        "panel | the supervisor presses acknowledge on the panel",
        "=>  the kiosk adds: supervisor on the way (panel-1)",
        "panel | lane 1 kiosk-001: ACKED, slow blink",
        "=>  acknowledged",
    ]
    assert story[5] == "panel | lane 1 kiosk-001: IDLE, steady on"
    assert "  panel: lane 1 kiosk-001: IDLE, steady on" in after  # status
    assert "nothing to acknowledge: panel lane 1 kiosk-001: IDLE" in after  # press, no call
