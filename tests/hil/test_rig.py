"""``make test`` runs the HIL rig when QEMU is here; plus the rig's pure helpers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.mrz import parse
from host_tools.hil.scenarios import SCENARIOS, default_scenarios
from host_tools.hil.scenarios.agent import bad_mrz, run_dropin
from host_tools.hil.scenarios.pins import kiosk_pins
from tests.support.require import need

REPO = Path(__file__).resolve().parents[2]
SPECIMEN = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]


def test_rescan_input_cannot_be_repaired():
    assert parse(SPECIMEN, mode="repair").valid
    broken = bad_mrz(SPECIMEN)
    assert broken != SPECIMEN and len(broken[1]) == 44
    for mode in ("strict", "tolerant", "repair"):
        assert not parse(broken, mode=mode).valid


def test_pins_come_from_the_hardware_files_and_are_distinct():
    pins = kiosk_pins()
    assert set(pins) == {"green", "amber", "red", "buzzer", "button"}
    assert len(set(pins.values())) == 5
    assert all(0 <= p <= 27 for p in pins.values())


def test_run_dropin_sets_environment_only():
    f = run_dropin({"FIELDTERM_SIGNALS__BACKEND": "gpio"})
    assert f.path.endswith("fieldterm-agent.service.d/hil-run.conf")
    assert f.data.decode() == "[Service]\nEnvironment=FIELDTERM_SIGNALS__BACKEND=gpio\n"


def test_default_scenarios_are_known_and_missing_parts_named():
    names, unavailable = default_scenarios()
    assert names and all(n in SCENARIOS for n in names)
    assert not set(names) & set(unavailable)
    for missing in unavailable.values():
        assert missing and all(not (REPO / p).exists() for p in missing)
    # this tree has the agent's parts: the real agent runs on both machines
    assert names == ["agent-virt", "agent-raspi3b", "discreet-raspi3b"]


def _hil_prerequisites() -> str | None:
    if os.environ.get("FIELDTERM_HIL", "auto") == "off":
        return "FIELDTERM_HIL=off"
    for tool in ("qemu-system-aarch64", "debootstrap", "mke2fs", "debugfs", "fdtput", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} missing (make system-deps)"
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        return "qemu-user-static missing (make system-deps)"
    if os.geteuid() != 0:
        return "the image build needs root (debootstrap, chroot, binfmt_misc)"
    return None


@pytest.mark.hil
@pytest.mark.timeout(4800)
def test_hil_rig_passes(capsys):
    """The whole rig: image (cached by input hash), then every default scenario."""
    why = _hil_prerequisites()
    if why:
        need("hil", why)
    proc = subprocess.run(
        [sys.executable, "-m", "host_tools.hil.rig"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=4700,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    with capsys.disabled():
        print("\n" + "\n".join(line for line in lines if line.startswith("hil:")))
    assert lines, proc.stderr[-3000:]
    assert re.fullmatch(r"hil: \d+ passed, 0 failed", lines[-1]), proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in default_scenarios()[0]:
        assert any(line.startswith(f"hil: {name} PASS ") for line in lines), name


def _synthetic_timeline(states, pins, *, quantum=0.05, jitter=0.03, seed=1):
    """What the recorder would see: ``states`` [(state, seconds)] played one after another
    by the firmware's own patterns, polled every ``quantum`` s with random lateness."""
    import random  # noqa: PLC0415

    from firmware.signals.patterns import CHANNELS, PATTERNS  # noqa: PLC0415
    from host_tools.hil.qtest import PinTimeline  # noqa: PLC0415

    rng = random.Random(seed)
    tl = PinTimeline({v: k for k, v in pins.items()})
    t, start, starts = 0.0, 0.0, []
    for state, length in states:
        starts.append(start)
        while t < start + length:
            levels = sum(
                1 << pins[ch]
                for ch in CHANNELS
                if PATTERNS[state].level(ch, t - start - rng.uniform(0, jitter))
            )
            tl.record(t, levels)
            t += quantum
        start += length
    return tl, starts


def _table():
    from firmware.signals.cli import sampled  # noqa: PLC0415

    return sampled(0.02, 6.0)


def test_the_rig_gets_the_firmware_patterns_from_its_command_line():
    from host_tools.hil.scenarios.pins import firmware_patterns  # noqa: PLC0415

    table = firmware_patterns()
    assert table == json.loads(json.dumps(_table()))
    assert {"clear", "possible_match", "unknown", "rescan"} <= set(table["states"])
    red = table["states"]["possible_match"]["levels"]["red"]  # 4 Hz: 0.125 s on, 0.125 off
    assert red[:6] == "1" * 6 and red[7:13] == "0" * 6 and red[13:19] == "1" * 6


@pytest.mark.parametrize("state", ["clear", "possible_match", "unknown", "rescan"])
def test_classify_tells_each_verdict_pattern_from_every_other(state):
    from host_tools.hil.scenarios.pins import classify  # noqa: PLC0415

    pins = kiosk_pins()
    tl, starts = _synthetic_timeline([("querying", 2.0), (state, 8.0), ("idle", 4.0)], pins)
    seen = starts[1] + 0.4  # the console line comes a little after the pins change
    ranked = classify(tl, pins, seen, _table())
    assert ranked[0].state == state and ranked[0].score >= 0.75, ranked[:3]
    assert abs(ranked[0].start - starts[1]) < 0.2
    assert ranked[1].score < ranked[0].score


def test_classify_rejects_a_wrong_or_frozen_pattern():
    from host_tools.hil.scenarios.pins import classify  # noqa: PLC0415

    pins = kiosk_pins()
    tl, starts = _synthetic_timeline([("idle", 2.0), ("unknown", 8.0)], pins)
    assert classify(tl, pins, starts[1], _table())[0].state == "unknown"
    # a red LED stuck on (no blinking, no buzzer) is not a possible match
    stuck = type(tl)(tl.names)
    stuck.record(0.0, 0)
    stuck.record(2.0, 1 << pins["red"])
    ranked = classify(stuck, pins, 2.0, _table())
    assert ranked[0].score < 0.75, ranked[:3]  # no pattern of the firmware explains it


def test_only_a_stall_before_the_agent_is_ready_is_booted_again(tmp_path):
    """An emulator that hangs before the kiosk's agent is up has checked nothing, and is
    booted once more; a failed check, or a timeout after the agent was ready, stands."""
    from host_tools.hil.rig import Outcome, stalled_before_ready  # noqa: PLC0415

    def out(error, timings):
        return Outcome("agent-raspi3b", not error, 1.0, error, tmp_path, timings, ())

    stall = "FieldtermTimeout: raspi3b: no 'agent ready' on the console after 450 s"
    assert stalled_before_ready(out(stall, {"boot": 50.2}))
    assert not stalled_before_ready(out(stall, {"boot": 50.2, "agent_ready": 73.6}))
    assert not stalled_before_ready(out("ScenarioFailed: pins for clear look like idle", {}))
    assert not stalled_before_ready(out("", {"boot": 50.2}))  # passed
