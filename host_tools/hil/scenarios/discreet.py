"""``discreet-raspi3b``: the discreet kiosk (``[signals] discreet = true`` in its
terminal.toml, docs/annunciator.md) on the emulated Pi, observed at its pins.

A CLEAR and then a POSSIBLE MATCH are scanned. From the pin timeline: the buzzer pin
gives one beep for each, of the same length within what the recorder can resolve (each
edge is known only to lie between two polls of GPLEV, so each beep's length is an
interval, and the two intervals must overlap), and no other beep follows while the match
stays latched (a loud kiosk beeps three times every 3 s); the red LED shows the possible
match's pattern (classified on the LEDs alone against every pattern of the firmware);
the button acknowledges it. The audit log must say the second verdict was a possible
match, so the single beep was not a clear in disguise.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.hil.image import GuestFile
from host_tools.hil.qtest import PinRecorder, PinTimeline, QtestClient
from host_tools.hil.scenarios.agent import (
    AGENT_READY,
    IDLE_SETTLE,
    Watch,
    _outcomes,
    _stop_audit,
    _td3,
    boot_files,
    expect_pattern,
)
from host_tools.hil.scenarios.common import Context, ScannerLink, check, wait_until
from host_tools.hil.scenarios.pins import firmware_patterns, kiosk_pins
from host_tools.hil.scenarios.region import NO_OFFLINE_LIST, StatusMonitor, hil_region
from host_tools.sim.scanner import encoder

#: How long the latched possible match is watched for a second beep: longer than the
#: loud pattern's 3 s period, twice.
LATCH_WATCH = 7.0


def discreet_files(files: list[GuestFile]) -> list[GuestFile]:
    """The boot files with ``[signals] discreet = true`` added to terminal.toml, and the
    bundle's MANIFEST.sha256 line for it updated (first boot checks it)."""
    tomls = [f for f in files if f.path.endswith("/terminal.toml")]
    check(len(tomls) == 1, "no terminal.toml among the boot files")
    toml = tomls[0].data + b"\n[signals]\ndiscreet = true\n"
    line = f"{hashlib.sha256(toml).hexdigest()}  terminal.toml"

    def edited(f: GuestFile) -> GuestFile:
        if f.path.endswith("/terminal.toml"):
            return GuestFile(f.path, toml, f.mode)
        if f.path.endswith("/MANIFEST.sha256"):
            rows = [
                line if r.endswith("  terminal.toml") else r for r in f.data.decode().split("\n")
            ]
            return GuestFile(f.path, "\n".join(rows).encode(), f.mode)
        return f

    return [edited(f) for f in files]


class PollLog:
    """The qtest client as the recorder sees it, noting when each poll of the pins
    returned: an edge recorded at a poll happened after the poll before it."""

    def __init__(self, client: QtestClient, t0: float):
        self.client = client
        self.t0 = t0
        self.times: list[float] = []

    def levels(self) -> int:
        value = self.client.levels()
        self.times.append(time.monotonic() - self.t0)
        return value

    def bracket(self, t: float) -> tuple[float, float]:
        """(the poll before, the poll that saw it) for a change the recorder stamped ``t``
        (just after that poll returned): the change happened between the two."""
        k = bisect.bisect_right(self.times, t) - 1
        if k < 1:
            return t, t
        return self.times[k - 1], self.times[k]


@dataclass(frozen=True)
class Beep:
    """One buzzer pulse: its length lies in [shortest, longest] (the recorder's
    resolution), ``seen`` is the length between the polls that saw it start and end."""

    at: float
    seen: float
    shortest: float
    longest: float

    def overlaps(self, other: Beep) -> bool:
        return self.shortest <= other.longest and other.shortest <= self.longest


def beeps(timeline: PinTimeline, polls: PollLog, pin: int, t0: float) -> list[Beep]:
    """The buzzer pulses seen since ``t0``; one still sounding counts, up to now."""
    out: list[Beep] = []
    rise: float | None = None
    for t, high in [*timeline.edges(pin, t0), (float("inf"), False)]:
        if high:
            rise = t
        elif rise is not None:
            end = min(t, polls.times[-1])
            (r0, r1), (f0, f1) = polls.bracket(rise), polls.bracket(end)
            out.append(Beep(rise, end - rise, max(0.0, f0 - r1), f1 - r0))
            rise = None
    return out


def leds_only(patterns: dict[str, Any]) -> dict[str, Any]:
    """The firmware's pattern table without the buzzer: the officer-facing lights only."""
    states = {
        s: {**info, "levels": {ch: v for ch, v in info["levels"].items() if ch != "buzzer"}}
        for s, info in patterns["states"].items()
    }
    return {**patterns, "states": states}


def run_raspi3b(ctx: Context) -> None:
    pins = kiosk_pins()
    names = {v: k for k, v in pins.items()}
    lights = leds_only(firmware_patterns())
    region = hil_region(ctx.rundir / "region", "/dev/ttyAMA0")
    env = {"FIELDTERM_SIGNALS__BACKEND": "gpio", "FIELDTERM_SIGNALS__DISPLAY": "none"}
    enc = encoder("stx")
    clean, listed = _td3(region.unlisted)[0], region.listed[0]
    region.start_broker()
    region.start_regional(env=NO_OFFLINE_LIST)
    monitor = StatusMonitor(region).start()
    try:
        with ctx.raspi3b(
            discreet_files(boot_files(region, env)), timeout=900,
            usb_net=[(region.port, region.port)],
        ) as g, QtestClient(g.spec.qtest_socket or Path()) as qt:  # fmt: skip
            qt.connect(g.deadline)
            qt.drive(pins["button"], True)  # the pull-up QEMU does not model
            t0 = time.monotonic()
            polls = PollLog(qt, t0)
            rec = PinRecorder(polls, names, t0=t0).start()  # type: ignore[arg-type]
            try:
                g.wait_for(r"HIL-READY", 240)
                ctx.timings["boot"] = g.elapsed()
                g.wait_for(AGENT_READY, 400)
                ctx.timings["agent_ready"] = g.elapsed()
                wait_until(lambda: "online" in monitor.states(), 120, "status 'online'")
                link = ScannerLink(g.spec.scanner_socket).connect()
                w = Watch(g)

                t_clear = rec.now()
                link.send(enc(clean))
                ctx.timings["clear"] = w.state("clear", 120)
                w.state("idle", 60)
                time.sleep(IDLE_SETTLE)
                clear = beeps(rec.timeline, polls, pins["buzzer"], t_clear)
                check(len(clear) == 1, f"CLEAR: {len(clear)} beeps, not one: {clear}")

                w.mark()
                t_match = rec.now()
                link.send(enc(listed))
                ctx.timings["possible_match"] = w.state("possible_match", 120)
                expect_pattern(ctx, rec, pins, lights, state="possible_match", around=rec.now())
                wait_until(lambda: rec.now() > t_match + LATCH_WATCH, LATCH_WATCH + 10, "latch")
                check("-> idle (" not in g.console()[w.offset :], "POSSIBLE MATCH did not latch")
                match = beeps(rec.timeline, polls, pins["buzzer"], t_match)
                check(len(match) == 1, f"discreet POSSIBLE MATCH: {len(match)} beeps: {match}")
                check(
                    match[0].overlaps(clear[0]),
                    f"beep lengths differ: CLEAR {clear[0]}, POSSIBLE MATCH {match[0]}",
                )
                ctx.note(
                    f"buzzer GPIO{pins['buzzer']}: one beep each, CLEAR {clear[0].seen:.3f} s "
                    f"[{clear[0].shortest:.3f}, {clear[0].longest:.3f}], POSSIBLE MATCH "
                    f"{match[0].seen:.3f} s [{match[0].shortest:.3f}, {match[0].longest:.3f}];"
                    f" none more in {LATCH_WATCH:.0f} s of latch"
                )
                qt.drive(pins["button"], False)
                w.state("idle", 60)
                qt.drive(pins["button"], True)
                ctx.note(f"red LED GPIO{pins['red']} showed the match; button acknowledged it")
                link.close()
            finally:
                rec.stop()
                (ctx.rundir / "pins.txt").write_text(rec.timeline.render())
            records = _stop_audit(ctx, g, region)
        outcomes = _outcomes(records)
        check(outcomes[:2] == ["NO_MATCH", "POSSIBLE_MATCH"], f"audit verdicts {outcomes}")
        ctx.note(f"audit log verified: verdicts {outcomes}")
    finally:
        monitor.stop()
        region.close()
