"""The real agent under systemd on emulated machines, against a real region on the host.

``agent-raspi3b`` (the kiosk's board): the bundle goes onto the SD card's boot partition
and the first-boot unit installs it; ``fieldterm-agent.service`` starts; ``usb-net`` on
the dwc2 controller carries MQTT (mTLS) to the host broker through a restricted slirp;
the scanner frames arrive on the PL011; the LEDs and buzzer are observed over qtest
(GPLEV0 every 50 ms) and each stretch is classified against the firmware's own patterns
(:func:`expect_pattern`); the acknowledge button is driven with GPSET0/GPCLR0. Checked:
CLEAR, POSSIBLE MATCH (latched, then acknowledged by the button), RESCAN and UNKNOWN
(the regional service stopped, so the query times out), then the audit log.

``agent-virt``: the full path on ``-M virt``: frames on a 16550, sealed queries through
Mosquitto and the regional service, and a broker outage in the middle: the scan made
while the broker is down shows UNKNOWN, stays in the outbox, and gets its verdict after
the broker returns. Checked from the host through the retained status messages and the
audit log read from the guest's disk; the alert desk on the host must get the sealed alert
for the possible match.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from host_tools.hil.image import GuestFile
from host_tools.hil.qemu import Guest
from host_tools.hil.qtest import PinRecorder, QtestClient
from host_tools.hil.scenarios.common import Context, ScannerLink, check, wait_until
from host_tools.hil.scenarios.pins import classify, firmware_patterns, kiosk_pins
from host_tools.hil.scenarios.region import (
    NO_OFFLINE_LIST,
    TERMINAL,
    StatusMonitor,
    audit_records,
    hil_region,
    read_guest_file,
)
from host_tools.localregion import DeskProcess, LocalRegion, RegionalProcess
from host_tools.localregion.runner import fieldterm_argv
from host_tools.sim.scanner import encoder

AGENT_READY = r"agent ready \(terminal kiosk-hil"
STATE_DIR = "/var/lib/fieldterm"
#: After IDLE is seen, before the next scan: IDLE opens with a 0.1 s green blip whose edges
#: can reach the host after the console line; the next scan's "never green" checks start
#: after it.
IDLE_SETTLE = 0.5


def bad_mrz(doc: list[str]) -> list[str]:
    """A TD3 document whose check digits are all wrong: no repair can make it valid."""
    line = list(doc[1])
    for pos in (9, 19, 27, 43):
        line[pos] = str((int(line[pos]) + 3) % 10) if line[pos].isdigit() else "7"
    return [doc[0], "".join(line)]


def _td3(docs: list[list[str]]) -> list[list[str]]:
    return [d for d in docs if len(d) == 2 and len(d[0]) == 44]


def run_dropin(env: dict[str, str]) -> GuestFile:
    """Per-run settings of the agent unit (the kiosk's file stays as shipped)."""
    text = "[Service]\n" + "".join(f"Environment={k}={v}\n" for k, v in env.items())
    return GuestFile("/etc/systemd/system/fieldterm-agent.service.d/hil-run.conf", text.encode())


def boot_files(region: LocalRegion, env: dict[str, str]) -> list[GuestFile]:
    """The bundle on the boot partition (installed by first boot) and the run drop-in."""
    files = [
        GuestFile(f"/boot/fieldterm-bundle/{p.name}", p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(region.bundle(TERMINAL).iterdir())
    ]
    return [*files, run_dropin(env)]


class Watch:
    """Follows agent state changes on the console from a given offset."""

    def __init__(self, guest: Guest):
        self.g = guest
        self.offset = len(guest.console())

    def mark(self) -> None:
        self.offset = len(self.g.console())

    def state(self, state: str, within: float) -> float:
        t0 = time.monotonic()
        self.g.wait_for(rf"-> {state} \(", within, since=self.offset)
        return time.monotonic() - t0


def _stop_audit(ctx: Context, guest: Guest, region: LocalRegion) -> list[dict[str, Any]]:
    """Cut the power (QEMU stops), read the audit log from the disk, verify its chain."""
    guest.stop()
    img = ctx.rundir / "root.img"
    text = read_guest_file(img, f"{STATE_DIR}/audit.log")
    (ctx.rundir / "audit.log").write_text(text)
    records = audit_records(text)
    check(bool(records), "no audit log on the guest's disk")
    proc = subprocess.run(
        fieldterm_argv("audit", "verify", "--log", str(ctx.rundir / "audit.log"), "--key",
                       str(region.bundle(TERMINAL) / "audit.key")),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    check(proc.returncode == 0, f"audit verify failed: {(proc.stdout + proc.stderr)[-400:]}")
    return records


def expect_pattern(
    ctx: Context,
    rec: PinRecorder,
    pins: dict[str, int],
    patterns: dict[str, Any],
    *,
    state: str,
    around: float,
    search: tuple[float, float] = (-1.5, 0.3),
    window: float = 3.0,
) -> None:
    """The pins seen over ``window`` s from near ``around`` must be best explained by
    ``state``'s pattern (of all the patterns the firmware has), well (>= 70 % of the
    samples), and clearly ahead of the next best (by 0.1 or more).

    70 %, not more: the host polls the pins every 50 ms, so each edge is seen up to 50 ms
    late, and the emulated Pi's own timing wanders on top (its 140 ms on / 120 ms off red
    blink was seen 150 ms on, then 100 ms off); the POSSIBLE MATCH blink, 8 edges a
    second, loses about a quarter of its samples to that alone (0.75 in one CI run, 0.87
    in the next scenario of the same run). The lead over the runner-up is what tells two
    similar patterns apart."""
    wait_until(lambda: rec.now() > around + search[1] + window + 0.1, window + 10, "pin samples")
    ranked = classify(rec.timeline, pins, around, patterns, window=window, search=search)
    best, runner = ranked[0], ranked[1]
    summary = f"{best.state} {best.score:.2f}, next {runner.state} {runner.score:.2f}"
    check(
        best.state == state and best.score >= 0.7 and best.score - runner.score >= 0.1,
        f"pins for {state} look like {summary}",
    )
    ctx.note(f"pin pattern {state}: {summary}")


def _outcomes(records: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("outcome")) for r in records if r.get("kind") == "verdict"]


def run_raspi3b(ctx: Context) -> None:
    pins = kiosk_pins()
    names = {v: k for k, v in pins.items()}
    patterns = firmware_patterns()
    region = hil_region(ctx.rundir / "region", "/dev/ttyAMA0")
    env = {"FIELDTERM_SIGNALS__BACKEND": "gpio", "FIELDTERM_SIGNALS__DISPLAY": "none"}
    enc = encoder("stx")
    unlisted = _td3(region.unlisted)
    clean, listed = unlisted[0], region.listed[0]
    region.start_broker()
    regional: RegionalProcess | None = region.start_regional(env=NO_OFFLINE_LIST)
    monitor = StatusMonitor(region).start()
    try:
        with ctx.raspi3b(
            boot_files(region, env), timeout=900,
            usb_net=[(region.port, region.port)],
        ) as g, QtestClient(g.spec.qtest_socket or Path()) as qt:  # fmt: skip
            qt.connect(g.deadline)
            # The button is wired to ground with the pull-up on (active low); QEMU does not
            # model pulls, so the host holds the line high, as the resistor would.
            qt.drive(pins["button"], True)
            rec = PinRecorder(qt, names).start()
            try:
                g.wait_for(r"HIL-READY", 240)
                ctx.timings["boot"] = g.elapsed()
                g.wait_for(AGENT_READY, 400)
                ctx.timings["agent_ready"] = g.elapsed()
                wait_until(lambda: "online" in monitor.states(), 120, "status 'online'")
                ctx.note("agent started by systemd; status 'online' over usb-net + mTLS")
                link = ScannerLink(g.spec.scanner_socket).connect()
                w = Watch(g)

                # CLEAR: green, never red
                t = rec.now()
                link.send(enc(clean))
                ctx.timings["clear"] = w.state("clear", 120)
                expect_pattern(ctx, rec, pins, patterns, state="clear", around=rec.now())
                wait_until(
                    lambda: (
                        rec.timeline.level_at(pins["green"], 1e9)
                        or bool(rec.timeline.edges(pins["green"], t))
                    ),
                    10,
                    "green LED",
                )
                check(not rec.timeline.edges(pins["red"], t), "red LED lit on CLEAR")
                ctx.note(f"CLEAR after {ctx.timings['clear']:.1f} s: green on GPIO{pins['green']}")
                w.state("idle", 60)
                time.sleep(IDLE_SETTLE)  # the idle pattern opens with a green blip

                # POSSIBLE MATCH: red + buzzer, latched until the button
                w.mark()
                t = rec.now()
                link.send(enc(listed))
                ctx.timings["possible_match"] = w.state("possible_match", 120)
                expect_pattern(ctx, rec, pins, patterns, state="possible_match", around=rec.now())
                wait_until(lambda: bool(rec.timeline.edges(pins["red"], t)), 10, "red LED")
                time.sleep(12)  # with the above, longer than any hold: a latch must not expire
                t_latched = rec.now()
                # still the full pattern, not a frozen LED (any phase: search a whole period)
                expect_pattern(
                    ctx, rec, pins, patterns,
                    state="possible_match", around=t_latched - 3.0, search=(-3, 0),
                )  # fmt: skip
                check("-> idle (" not in g.console()[w.offset :], "POSSIBLE MATCH did not latch")
                check(
                    rec.timeline.level_at(pins["red"], t_latched)
                    or bool(rec.timeline.edges(pins["red"], t_latched - 3)),
                    "red LED not signalling while latched",
                )
                check(
                    bool(rec.timeline.edges(pins["buzzer"], t)), "buzzer silent on POSSIBLE MATCH"
                )
                qt.drive(pins["button"], False)  # pressed: the line goes to ground
                w.state("idle", 60)
                qt.drive(pins["button"], True)
                t_ack = rec.now()
                time.sleep(2)  # longer than IDLE_SETTLE
                check(
                    not rec.timeline.level_at(pins["red"], 1e9)
                    and not rec.timeline.edges(pins["red"], t_ack + 1),
                    "red LED still on after acknowledge",
                )
                ctx.note(
                    f"POSSIBLE MATCH latched {t_latched - t:.0f} s; button on GPIO"
                    f"{pins['button']} acknowledged it; red/buzzer seen"
                )

                # RESCAN: bad check digits, nothing sent
                w.mark()
                t = rec.now()
                link.send(enc(bad_mrz(unlisted[1])))
                ctx.timings["rescan"] = w.state("rescan", 120)
                expect_pattern(ctx, rec, pins, patterns, state="rescan", around=rec.now())
                wait_until(lambda: bool(rec.timeline.edges(pins["amber"], t)), 10, "amber LED")
                check(not rec.timeline.edges(pins["green"], t), "green LED lit on RESCAN")
                w.state("idle", 60)
                time.sleep(IDLE_SETTLE)  # the idle pattern opens with a green blip

                # UNKNOWN: the regional service stops answering; the query times out
                assert regional is not None
                regional.stop()
                regional = None
                w.mark()
                t = rec.now()
                link.send(enc(unlisted[2]))
                ctx.timings["unknown"] = w.state("unknown", 120)
                expect_pattern(ctx, rec, pins, patterns, state="unknown", around=rec.now())
                wait_until(lambda: bool(rec.timeline.edges(pins["amber"], t)), 10, "amber LED")
                check(not rec.timeline.edges(pins["green"], t), "green LED lit on UNKNOWN")
                ctx.note("RESCAN and UNKNOWN (regional stopped): amber, never green")
                link.close()
            finally:
                rec.stop()
                (ctx.rundir / "pins.txt").write_text(rec.timeline.render())
            records = _stop_audit(ctx, g, region)
        outcomes = _outcomes(records)
        check(outcomes[:2] == ["NO_MATCH", "POSSIBLE_MATCH"], f"audit verdicts {outcomes}")
        check(any(r.get("kind") == "rescan" for r in records), "no rescan in the audit log")
        check(any(r.get("kind") == "unknown" for r in records), "no unknown in the audit log")
        ctx.note(f"audit log verified: {len(records)} lines, verdicts {outcomes}")
    finally:
        monitor.stop()
        region.close()
        (ctx.rundir / "status.jsonl").write_text(
            "".join(json.dumps(m) + "\n" for _, m in monitor.messages)
        )


def run_virt(ctx: Context) -> None:
    region = hil_region(ctx.rundir / "region", "/dev/ttyS0", desk=True)
    env = {"FIELDTERM_SIGNALS__BACKEND": "console", "FIELDTERM_SIGNALS__DISPLAY": "none"}
    enc = encoder("lines")
    clean, listed = _td3(region.unlisted), region.listed
    broker = region.start_broker()
    region.start_regional(env=NO_OFFLINE_LIST)
    monitor = StatusMonitor(region).start()
    desk: DeskProcess | None = None
    try:
        with ctx.virt(
            boot_files(region, env), timeout=600,
            guestfwd=[(region.port, region.port)],
        ) as g:  # fmt: skip
            g.wait_for(r"HIL-READY", 150)
            ctx.timings["boot"] = g.elapsed()
            g.wait_for(AGENT_READY, 300)
            ctx.timings["agent_ready"] = g.elapsed()
            wait_until(lambda: "online" in monitor.states(), 60, "status 'online'")
            link = ScannerLink(g.spec.scanner_socket).connect()
            w = Watch(g)
            link.send(enc(clean[0]))
            ctx.timings["clear"] = w.state("clear", 60)
            w.state("idle", 60)
            ctx.note("CLEAR through Mosquitto (mTLS) and the regional service")

            # broker outage: the scan shows UNKNOWN, stays in the outbox, and is answered
            # after the broker comes back (same port, persistent sessions)
            broker.stop()
            t_down = time.monotonic()
            w.mark()
            link.send(enc(clean[1]))
            ctx.timings["outage_unknown"] = w.state("unknown", 90)
            time.sleep(5)  # the outage itself: the kiosk must hold the scan meanwhile
            region.start_broker()
            ctx.timings["outage_s"] = time.monotonic() - t_down
            # the retained status says online/offline only (the counts travel sealed to
            # the desk): the kiosk's own log says when the outage scan got its answer
            g.wait_for(r"\(late verdict\) scan #\d+ late", 180, since=w.offset)
            ctx.timings["outage_resolved"] = g.elapsed()
            ctx.note(
                f"broker down {ctx.timings['outage_s']:.0f} s: UNKNOWN shown, "
                "query kept and answered after reconnect"
            )
            w.state("idle", 120)

            # POSSIBLE MATCH last: it latches (no button on virt); the alert desk on the
            # host must get the sealed alert for it
            desk = region.start_desk()  # returns once it hears the region
            w.mark()
            link.send(enc(listed[0]))
            ctx.timings["possible_match"] = w.state("possible_match", 90)
            alerts = desk.wait_alerts(1, timeout=60)
            link.close()
            records = _stop_audit(ctx, g, region)
        check(len(alerts) == 1, f"alert desk: {alerts}")
        outcomes = _outcomes(records)
        check(outcomes == ["NO_MATCH", "NO_MATCH", "POSSIBLE_MATCH"], f"audit verdicts {outcomes}")
        check(sum(r.get("kind") == "unknown" for r in records) >= 1, "no 'unknown' audit line")
        hit = [r for r in records if r.get("kind") == "verdict"][2]
        check(
            alerts[0].get("query_id") == hit.get("qid") and alerts[0].get("terminal") == TERMINAL,
            f"the desk's alert {alerts[0]} is not for the kiosk's possible match {hit}",
        )
        ctx.note(f"alert desk got the sealed alert for query {hit.get('qid')}")
        late = [r for r in records if r.get("kind") == "verdict"][1]
        unknown = next(r for r in records if r.get("kind") == "unknown")
        check(late.get("qid") == unknown.get("qid"), "late verdict is not for the outage scan")
        # The log's end is anchored from outside by the desk's alert (the retained status
        # no longer carries the audit head): the alert's query id must be the third
        # verdict's (checked above), so a log cut before that verdict fails there.
        ctx.note(f"audit log verified: {len(records)} lines, verdicts {outcomes}")
    finally:
        monitor.stop()
        region.close()
        (ctx.rundir / "status.jsonl").write_text(
            "".join(json.dumps(m) + "\n" for _, m in monitor.messages)
        )
