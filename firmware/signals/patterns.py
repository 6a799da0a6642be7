"""What each terminal state looks and sounds like, channel by channel, over time.

The four answers, and the two answers from the offline list, differ by *pattern* as well
as colour, so an officer who cannot tell red from green still cannot confuse them:

| state          | light                        | sound                                  |
|----------------|------------------------------|----------------------------------------|
| clear          | green steady                 | one short beep                         |
| possible_match | red fast blink (4 Hz)        | three long beeps, repeated every 3 s   |
| unknown        | amber slow blink (1 Hz)      | three short beeps                      |
| rescan         | amber double flash           | two short beeps                        |
| possible_match_offline | red triple flash     | two long beeps, repeated every 3 s     |
| not_listed     | green medium blink (2 Hz)    | four short beeps                       |
| reading        | amber steady                 | none                                   |
| querying       | amber fast blink             | none                                   |
| idle           | green blip every 3 s         | none                                   |
| offline        | amber blip every 3 s         | none                                   |
| pending        | green and amber blips        | none                                   |
| fault          | red slow blink               | one long beep                          |
| storage_full   | red steady, amber blip       | two long beeps, repeated every 10 s    |

How long a state lasts (a latched possible match, results falling back to idle) is the
state machine's business (:mod:`firmware.agent.states`); a pattern only says what a state
looks like from the moment it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("green", "amber", "red", "buzzer")


@dataclass(frozen=True)
class Wave:
    """A periodic on/off wave: ``pulses`` pulses of ``on`` s separated by ``gap`` s, starting
    every ``period`` s (``period=None``: once). ``on=None`` means steady on."""

    on: float | None = None
    gap: float = 0.0
    pulses: int = 1
    period: float | None = None
    label: str = "steady"

    def level(self, t: float) -> bool:
        """Whether the channel is on ``t`` seconds after the state was shown."""
        if self.on is None:
            return True
        if t < 0:
            return False
        if self.period is not None:
            t = t % self.period
        step = self.on + self.gap
        index = int(t // step) if step > 0 else 0
        if index >= self.pulses:
            return False
        return (t - index * step) < self.on


STEADY = Wave()


def blink(hz: float, label: str) -> Wave:
    half = 0.5 / hz
    return Wave(on=half, gap=half, pulses=1, period=2 * half, label=label)


SLOW_BLINK = blink(1.0, "slow blink")
FAST_BLINK = blink(4.0, "fast blink")
MEDIUM_BLINK = blink(2.0, "medium blink")
DOUBLE_FLASH = Wave(on=0.12, gap=0.12, pulses=2, period=1.2, label="double flash")
TRIPLE_FLASH = Wave(on=0.12, gap=0.12, pulses=3, period=1.5, label="triple flash")
BLIP = Wave(on=0.1, gap=0.0, pulses=1, period=3.0, label="blip every 3 s")


def beeps(count: int, length: float, gap: float, every: float | None = None) -> Wave:
    kind = "long" if length >= 0.4 else "short"
    label = f"{count} {kind} beep{'s' if count > 1 else ''}"
    if every:
        label += f" every {every:g} s"
    return Wave(on=length, gap=gap, pulses=count, period=every, label=label)


@dataclass(frozen=True)
class Pattern:
    """Per channel, the wave it follows; a channel not named stays off."""

    state: str
    waves: tuple[tuple[str, Wave], ...]

    def level(self, channel: str, t: float) -> bool:
        for name, wave in self.waves:
            if name == channel:
                return wave.level(t)
        return False

    def describe(self) -> str:
        """Words for the pattern, for consoles and colour-blind users: 'red fast blink, ...'."""
        if not self.waves:
            return "all off"
        return ", ".join(
            (wave.label if name == "buzzer" else f"{name} {wave.label}")
            for name, wave in self.waves
        )


PATTERNS: dict[str, Pattern] = {
    p.state: p
    for p in (
        Pattern("idle", (("green", BLIP),)),
        Pattern("reading", (("amber", STEADY),)),
        Pattern("querying", (("amber", FAST_BLINK),)),
        Pattern("clear", (("green", STEADY), ("buzzer", beeps(1, 0.15, 0.0)))),
        Pattern(
            "possible_match",
            (("red", FAST_BLINK), ("buzzer", beeps(3, 0.6, 0.3, every=3.0))),
        ),
        Pattern("unknown", (("amber", SLOW_BLINK), ("buzzer", beeps(3, 0.12, 0.12)))),
        Pattern("rescan", (("amber", DOUBLE_FLASH), ("buzzer", beeps(2, 0.12, 0.12)))),
        Pattern(
            "possible_match_offline",
            (("red", TRIPLE_FLASH), ("buzzer", beeps(2, 0.6, 0.3, every=3.0))),
        ),
        Pattern("not_listed", (("green", MEDIUM_BLINK), ("buzzer", beeps(4, 0.12, 0.12)))),
        Pattern("offline", (("amber", BLIP),)),
        Pattern("pending", (("green", BLIP), ("amber", Wave(0.1, 0.0, 1, 3.0, "blip every 3 s")))),
        Pattern("fault", (("red", SLOW_BLINK), ("buzzer", beeps(1, 1.0, 0.0)))),
        Pattern(
            "storage_full",
            (("red", STEADY), ("amber", BLIP), ("buzzer", beeps(2, 1.0, 0.4, every=10.0))),
        ),
    )
}

STATES = tuple(PATTERNS)

#: ``[signals] discreet = true``: these states *sound* like the one they map to (the
#: lights and display are unchanged), so a traveller at the desk hears a possible match
#: exactly as a clear; the supervisor's annunciator gets the call (docs/annunciator.md).
DISCREET_SOUNDS: dict[str, str] = {
    "possible_match": "clear",
    "possible_match_offline": "clear",
}
