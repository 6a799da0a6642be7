"""The discreet HIL scenario's pure helpers: the config it boots with, and beep lengths
as intervals bounded by the recorder's polls (host_tools/hil/scenarios/discreet.py)."""

from __future__ import annotations

import hashlib
import tomllib

from host_tools.hil.image import GuestFile
from host_tools.hil.qtest import PinTimeline
from host_tools.hil.scenarios.discreet import PollLog, beeps, discreet_files, leds_only


def test_discreet_files_turn_the_option_on_and_keep_the_manifest_true():
    toml, key = b'[terminal]\nid = "kiosk-hil"\n', b"k\n"
    files = [
        GuestFile("/boot/fieldterm-bundle/terminal.toml", toml),
        GuestFile("/boot/fieldterm-bundle/audit.key", key, 0o600),
        GuestFile(
            "/boot/fieldterm-bundle/MANIFEST.sha256",
            f"{hashlib.sha256(key).hexdigest()}  audit.key\n"
            f"{hashlib.sha256(toml).hexdigest()}  terminal.toml\n".encode(),
        ),
    ]
    out = {f.path.rsplit("/", 1)[1]: f for f in discreet_files(files)}
    assert tomllib.loads(out["terminal.toml"].data.decode())["signals"] == {"discreet": True}
    sums = dict(
        reversed(line.split("  "))
        for line in out["MANIFEST.sha256"].data.decode().split("\n")
        if line
    )
    assert sums["terminal.toml"] == hashlib.sha256(out["terminal.toml"].data).hexdigest()
    assert out["audit.key"] == files[1]


def test_a_beep_is_an_interval_between_polls():
    polls = PollLog(client=None, t0=0.0)  # type: ignore[arg-type]
    polls.times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    tl = PinTimeline({15: "buzzer"})
    for t, level in ((0.0005, 0), (0.2005, 1 << 15), (0.4005, 0)):
        tl.record(t, level)  # stamped just after the poll that saw it
    (beep,) = beeps(tl, polls, 15, 0.0)
    # rose in (0.1, 0.2], fell in (0.3, 0.4]: between 0.1 and 0.3 s long
    assert round(beep.seen, 3) == 0.2
    assert (round(beep.shortest, 3), round(beep.longest, 3)) == (0.1, 0.3)


def test_leds_only_drops_the_buzzer():
    table = {"step": 0.02, "states": {"clear": {"levels": {"green": "1", "buzzer": "1"}}}}
    assert leds_only(table)["states"]["clear"]["levels"] == {"green": "1"}


def _played(state: str, discreet: bool, seconds: float = 7.0, step: float = 0.05):
    """The buzzer as the recorder would see ``state`` played by the firmware's patterns
    (a loud or a discreet kiosk), polled every ``step`` s."""
    from firmware.signals.patterns import DISCREET_SOUNDS, PATTERNS  # noqa: PLC0415

    sound = PATTERNS[DISCREET_SOUNDS.get(state, state) if discreet else state]
    polls = PollLog(client=None, t0=0.0)  # type: ignore[arg-type]
    tl = PinTimeline({18: "buzzer"})
    polls.times.append(0.9)
    tl.record(0.901, 0)  # silent before the state starts at 1.0 s
    for i in range(round(seconds / step)):
        t = 1.0 + i * step
        polls.times.append(t)
        tl.record(t + 0.001, (1 << 18) if sound.level("buzzer", t - 1.0) else 0)
    return beeps(tl, polls, 18, 0.0)


def test_the_beep_check_tells_a_loud_possible_match_from_a_clear():
    """What the scenario asserts, on the firmware's own patterns: a discreet possible match
    gives one beep overlapping the clear's; a loud one would fail both checks."""
    (clear,) = _played("clear", discreet=True)
    (quiet,) = _played("possible_match", discreet=True)
    assert quiet.overlaps(clear)
    loud = _played("possible_match", discreet=False)
    assert len(loud) > 1 and not loud[0].overlaps(clear)
