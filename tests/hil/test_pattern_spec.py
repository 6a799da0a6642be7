"""The HIL judges the emulated Pi's pins against the firmware's own pattern table
(``fieldterm signals patterns --json``). That table is pinned here to the written spec,
hardware/README.md "What the officer sees and hears", so a drift in the firmware fails
these tests instead of moving the HIL's expectations along with it.

``SPEC`` restates that table: channels a state does not name must stay dark. Where the spec
gives numbers (4 Hz, 1 Hz, every 3 s, counts) they are checked to one sample step; where it
gives words the words are bounded: a *short* beep or flash lasts under 0.3 s, a *long* beep
at least 0.4 s, a *blip* under 0.2 s.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cache

import pytest

from host_tools.hil.qtest import PinTimeline
from host_tools.hil.scenarios.pins import STEP, classify, firmware_patterns, kiosk_pins

SHORT, LONG, BLIP_MAX = 0.3, 0.4, 0.2


@dataclass(frozen=True)
class Steady:
    def level(self, t: float) -> bool:
        return True


@dataclass(frozen=True)
class Blink:
    hz: float

    def level(self, t: float) -> bool:
        return t % (1 / self.hz) < 0.5 / self.hz


@dataclass(frozen=True)
class Blip:
    every: float

    def level(self, t: float) -> bool:
        return t % self.every < 0.1


@dataclass(frozen=True)
class Pulses:
    """``count`` pulses (beeps or flashes), ``short`` or long, once or ``every`` s."""

    count: int
    short: bool
    every: float | None = None

    def level(self, t: float) -> bool:  # a plausible rendering of the words, for classify
        on, gap = (0.15, 0.15) if self.short else (0.6, 0.3)
        if self.every is not None:
            t %= self.every
        return t < self.count * (on + gap) and t % (on + gap) < on


@dataclass(frozen=True)
class Flashes:
    """``count`` short flashes close together, the group repeated (the spec's "double
    flash" says no period: any group spacing wider than the flashes' own is accepted)."""

    count: int

    def level(self, t: float) -> bool:  # a plausible rendering, for classify
        return Pulses(self.count, short=True, every=1.0).level(t)


#: hardware/README.md, "What the officer sees and hears" (the four answers first, then the
#: two offline-list answers).
SPEC = {
    "clear": {"green": Steady(), "buzzer": Pulses(1, short=True)},
    "possible_match": {"red": Blink(4.0), "buzzer": Pulses(3, short=False, every=3.0)},
    "unknown": {"amber": Blink(1.0), "buzzer": Pulses(3, short=True)},
    "rescan": {"amber": Flashes(2), "buzzer": Pulses(2, short=True)},
    "possible_match_offline": {"red": Flashes(3), "buzzer": Pulses(2, short=False, every=3.0)},
    "not_listed": {"green": Blink(2.0), "buzzer": Pulses(4, short=True)},
    "reading": {"amber": Steady()},
    "querying": {"amber": Blink(4.0)},
    "idle": {"green": Blip(3.0)},
    "offline": {"amber": Blip(3.0)},
    "pending": {"green": Blip(3.0), "amber": Blip(3.0)},
    "fault": {"red": Blink(1.0), "buzzer": Pulses(1, short=False)},
    "storage_full": {
        "red": Steady(),
        "amber": Blip(3.0),
        "buzzer": Pulses(2, short=False, every=10.0),
    },
}
VERDICTS = ("clear", "possible_match", "unknown", "rescan")


@cache
def table() -> dict:
    """The firmware's table exactly as the HIL rig gets it (through the command line)."""
    return firmware_patterns()


def runs(levels: str, step: float) -> list[tuple[float, float]]:
    """``(start, length)`` in seconds of every on-run in a sampled level string."""
    out, i = [], 0
    while i < len(levels):
        if levels[i] == "1":
            j = levels.index("0", i) if "0" in levels[i:] else len(levels)
            out.append((i * step, (j - i) * step))
            i = j
        else:
            i += 1
    return out


def _close(a: float, b: float, tol: float = STEP * 1.5) -> bool:
    return abs(a - b) <= tol


def drift(channel: str, want: object, levels: str, step: float, seconds: float) -> str | None:
    """Why ``levels`` does not show ``want`` (None when it does)."""
    on = runs(levels, step)
    full = [r for r in on if r[0] + r[1] < seconds - step]  # runs the window did not cut
    if want is None:
        return f"lit {on[:3]} but the spec names no {channel}" if on else None
    if isinstance(want, Steady):
        return None if set(levels) == {"1"} else f"not steady: {on[:3]}"
    if isinstance(want, Blink):
        half = 0.5 / want.hz
        bad = [r for r in full if not _close(r[1], half)]
        starts = [s for s, _ in on]
        periods = [b - a for a, b in itertools.pairwise(starts)]
        if not on or on[0][0] != 0 or bad or not all(_close(p, 2 * half) for p in periods):
            return f"not a {want.hz:g} Hz blink: {on[:4]}"
        return None
    if isinstance(want, Blip):
        starts = [s for s, _ in on]
        expect = [k * want.every for k in range(int((seconds - 1e-9) // want.every) + 1)]
        if len(starts) != len(expect) or not all(map(_close, starts, expect)):
            return f"blips at {starts}, not every {want.every:g} s"
        if any(length >= BLIP_MAX for _, length in on):
            return f"blips too long: {on}"
        return None
    if isinstance(want, Flashes):
        gaps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(on)]
        between_groups = gaps[want.count - 1 :: want.count]
        within = [g for i, g in enumerate(gaps) if i % want.count != want.count - 1]
        if len(full) < 2 * want.count or any(length >= SHORT for _, length in full):
            return f"not groups of short flashes: {on[:6]}"
        if not within or not between_groups or max(within) >= min(between_groups):
            return f"flashes not in groups of {want.count}: {on[:6]}"
        return None
    assert isinstance(want, Pulses)
    period = want.every if want.every and want.every <= seconds else seconds  # one group seen
    groups: dict[int, list[tuple[float, float]]] = {}
    for s, length in on:
        groups.setdefault(int(s // period), []).append((s, length))
    complete = [g for k, g in groups.items() if (k + 1) * period <= seconds + 1e-9]
    if not complete or any(len(g) != want.count for g in complete):
        return f"{[len(g) for g in groups.values()]} pulses per group, not {want.count}"
    if want.every is None and len(groups) != 1:
        return f"repeats: {on}"
    if want.every is not None and not all(_close(g[0][0], k * period) for k, g in groups.items()):
        return f"groups do not start every {period:g} s: {on}"
    lengths = [length for g in complete for _, length in g]
    if want.short and max(lengths) >= SHORT:
        return f"not short: {lengths}"
    if not want.short and min(lengths) < LONG:
        return f"not long: {lengths}"
    return None


def test_the_spec_table_names_every_state_the_firmware_has():
    assert set(table()["states"]) == set(SPEC)


@pytest.mark.parametrize("state", list(SPEC))
def test_firmware_pattern_matches_the_written_spec(state):
    t = table()
    step, seconds = float(t["step"]), float(t["seconds"])
    levels = t["states"][state]["levels"]
    problems = {
        ch: why
        for ch in levels
        if (why := drift(ch, SPEC[state].get(ch), levels[ch], step, seconds))
    }
    assert problems == {}, f"{state}: firmware pattern drifted from hardware/README.md"


def test_the_drift_check_catches_a_swapped_or_slowed_pattern():
    t = table()
    step, seconds = float(t["step"]), float(t["seconds"])
    unknown, rescan = t["states"]["unknown"]["levels"], t["states"]["rescan"]["levels"]
    # RESCAN's two beeps where UNKNOWN's three belong, and a 2 Hz blink for a 4 Hz one
    assert drift("buzzer", SPEC["unknown"]["buzzer"], rescan["buzzer"], step, seconds)
    slow = "".join(c * 2 for c in t["states"]["possible_match"]["levels"]["red"])[
        : len(unknown["amber"])
    ]
    assert drift("red", Blink(4.0), slow, step, seconds)
    assert drift("red", None, unknown["amber"], step, seconds)  # lit but not named


def spec_timeline(states, pins, *, quantum=0.05, jitter=0.03, seed=3):
    """What the recorder would see if the kiosk played ``states`` [(state, seconds)] as the
    spec describes them (not as the firmware's table does), polled every ``quantum`` s."""
    rng = random.Random(seed)
    tl = PinTimeline({v: k for k, v in pins.items()})
    t, start, starts = 0.0, 0.0, []
    for state, length in states:
        starts.append(start)
        while t < start + length:
            late = t - start - rng.uniform(0, jitter)
            levels = sum(
                1 << pins[ch] for ch, wave in SPEC[state].items() if late >= 0 and wave.level(late)
            )
            tl.record(t, levels)
            t += quantum
        start += length
    return tl, starts


@pytest.mark.parametrize("state", [v for v in VERDICTS if v != "rescan"])
def test_the_hil_classifies_spec_behaviour_as_the_spec_state(state):
    """Pins behaving as hardware/README.md says are recognised by the HIL's classify (with
    the firmware's table) as that state, ahead of every other.

    Not RESCAN: the spec gives its double flash no period, and classify compares sample by
    sample, so a rendering with another period (1.0 s) scores 0.72 there; its pattern is
    pinned by test_firmware_pattern_matches_the_written_spec instead."""
    pins = kiosk_pins()
    tl, starts = spec_timeline([("querying", 2.0), (state, 8.0), ("idle", 4.0)], pins)
    ranked = classify(tl, pins, starts[1] + 0.4, table())
    assert ranked[0].state == state and ranked[0].score >= 0.75, ranked[:3]
    assert ranked[1].score < ranked[0].score
