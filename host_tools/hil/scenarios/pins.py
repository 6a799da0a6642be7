"""The kiosk's BCM pin numbers as the HIL observes them, from the hardware pin map, and
:func:`classify`, which tells which signal pattern a recorded pin timeline shows.

``hardware/pinmap.toml`` is the single source of the firmware's default pins; until it
exists, the ``[signals.pins]`` table of ``hardware/terminal.example.toml`` is used.
"""

from __future__ import annotations

import bisect
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError
from firmware.signals.patterns import PATTERNS, Pattern
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


OUTPUTS = ("green", "amber", "red", "buzzer")


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
    *,
    window: float = 3.0,
    search: tuple[float, float] = (-1.5, 0.3),
    step: float = 0.02,
    patterns: Mapping[str, Pattern] = PATTERNS,
) -> list[PatternMatch]:
    """Score every pattern of ``firmware/signals/patterns.py`` against the pin levels seen in
    ``window`` seconds from a start near ``around`` (timeline seconds), best first.

    The start is searched over ``around + search`` because the host learns of a state change
    from the console a little after the pins change. A channel a pattern does not name must
    stay off, so a pattern explains the pins only if all four outputs agree.
    """
    times = [t for t, _ in timeline.samples]
    lo, hi = around + search[0], around + search[1]
    span = hi - lo + window
    grid_n = int(span / step) + 1
    # observed levels on a fine grid from lo (bisect into the change list once per point)
    obs: dict[str, list[bool]] = {ch: [] for ch in OUTPUTS}
    for i in range(grid_n):
        t = lo + i * step
        k = bisect.bisect_right(times, t) - 1
        levels = timeline.samples[k][1] if k >= 0 else 0
        for ch in OUTPUTS:
            obs[ch].append(bool(levels >> pins[ch] & 1))
    per = int(window / step)
    out = []
    for state, pattern in patterns.items():
        expected = {ch: [pattern.level(ch, j * step) for j in range(per)] for ch in OUTPUTS}
        best, best_start = -1.0, lo
        for off in range(int((hi - lo) / step) + 1):
            agree = sum(
                all(obs[ch][off + j] == expected[ch][j] for ch in OUTPUTS) for j in range(per)
            )
            if agree / per > best:
                best, best_start = agree / per, lo + off * step
        out.append(PatternMatch(state, round(best, 3), round(best_start, 2)))
    return sorted(out, key=lambda m: m.score, reverse=True)
