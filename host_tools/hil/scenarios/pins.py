"""The kiosk's BCM pin numbers as the HIL observes them, from the hardware pin map, and
:func:`classify`, which tells which signal pattern a recorded pin timeline shows.

``hardware/pinmap.toml`` is the single source of the firmware's default pins; until it
exists, the ``[signals.pins]`` table of ``hardware/terminal.example.toml`` is used.
"""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError, OperationError
from host_tools.hil.qtest import PinTimeline

REPO = Path(__file__).resolve().parents[3]
NAMES = ("green", "amber", "red", "buzzer", "button")


def _find(doc: Mapping[str, Any]) -> dict[str, int] | None:
    """The first table (depth-first) that names every signal with an integer or {bcm=N}."""
    found: dict[str, int] = {}
    for name in NAMES:
        value = doc.get(name)
        if isinstance(value, Mapping):
            value = value.get("bcm", value.get("gpio"))
        if isinstance(value, int) and not isinstance(value, bool):
            found[name] = value
    if len(found) == len(NAMES):
        return found
    for value in doc.values():
        if isinstance(value, Mapping):
            sub = _find(value)
            if sub:
                return sub
    return None


def kiosk_pins(repo: Path = REPO) -> dict[str, int]:
    """``{"green": 17, ...}`` for the five signal pins."""
    for rel in ("hardware/pinmap.toml", "hardware/terminal.example.toml"):
        path = repo / rel
        if path.exists():
            pins = _find(tomllib.loads(path.read_text()))
            if pins:
                return pins
    raise ConfigError("no table naming green, amber, red, buzzer and button", source="hardware/")


#: Sampling step of the expected patterns and of the comparison (the recorder polls at 50 ms).
STEP = 0.02


def firmware_patterns(step: float = STEP, seconds: float = 6.0) -> dict[str, Any]:
    """The firmware's own patterns, sampled, from ``fieldterm signals patterns --json``.

    The rig asks the firmware through its command line (host tools never import the kiosk's
    signal code), with the ``fieldterm`` of this checkout: the same source the image's
    wheel is built from.
    """
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "fieldterm"), "signals", "patterns", "--json",
         "--step", str(step), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise OperationError(f"fieldterm signals patterns failed: {proc.stderr[-400:]}")
    table: dict[str, Any] = json.loads(proc.stdout)
    return table


@dataclass(frozen=True)
class PatternMatch:
    """How well one state's pattern explains the observed pins: the share of the window in
    which every output agreed, at the best start time found."""

    state: str
    score: float
    start: float


def classify(
    timeline: PinTimeline,
    pins: Mapping[str, int],
    around: float,
    patterns: Mapping[str, Any],
    *,
    window: float = 3.0,
    search: tuple[float, float] = (-1.5, 0.3),
) -> list[PatternMatch]:
    """Score every pattern in ``patterns`` (a :func:`firmware_patterns` table) against the
    pin levels seen in ``window`` seconds from a start near ``around`` (timeline seconds),
    best first.

    The start is searched over ``around + search`` because the host learns of a state change
    from the console a little after the pins change. A channel a pattern does not name must
    stay off, so a pattern explains the pins only if all four outputs agree.
    """
    step = float(patterns["step"])
    # the output channels as the firmware names them (every state lists all of them)
    outputs = tuple(next(iter(patterns["states"].values()))["levels"])
    per = round(window / step)
    if per > round(float(patterns["seconds"]) / step):
        raise ValueError(f"window {window} s is longer than the sampled patterns")
    times = [t for t, _ in timeline.samples]
    lo, hi = around + search[0], around + search[1]
    offsets = round((hi - lo) / step) + 1
    # observed levels on the same grid from lo (bisect into the change list once per point)
    obs: dict[str, list[bool]] = {ch: [] for ch in outputs}
    for i in range(offsets + per):
        t = lo + i * step
        k = bisect.bisect_right(times, t) - 1
        levels = timeline.samples[k][1] if k >= 0 else 0
        for ch in outputs:
            obs[ch].append(bool(levels >> pins[ch] & 1))
    out = []
    for state, info in patterns["states"].items():
        expected = {ch: [c == "1" for c in info["levels"][ch][:per]] for ch in outputs}
        best, best_start = -1.0, lo
        for off in range(offsets):
            agree = sum(
                all(obs[ch][off + j] == expected[ch][j] for ch in outputs) for j in range(per)
            )
            if agree / per > best:
                best, best_start = agree / per, lo + off * step
        out.append(PatternMatch(state, round(best, 3), round(best_start, 2)))
    return sorted(out, key=lambda m: m.score, reverse=True)
