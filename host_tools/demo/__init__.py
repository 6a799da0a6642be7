"""``make demo``: the whole system on one machine, played from a script.

What runs (all on 127.0.0.1, all in a throwaway directory), through
:class:`host_tools.localregion.LocalRegion`:

1. provisioning: a region CA, one kiosk's bundle, the broker directory, the alert desk
   (``fieldterm provision init / add-terminal / broker-config / alert-desk``);
2. a synthetic SLTD list (``fieldterm sltd generate``) with samples of listed and
   unlisted documents;
3. Mosquitto with mutual TLS from the generated ``mosquitto.conf``;
4. the kiosk agent (``fieldterm agent``) with console LEDs and display, reading a scanner
   simulator on a pty as its serial port;
5. the regional service (``fieldterm regional``), started after a first scan (which
   therefore shows UNKNOWN and is answered once the service is up), which publishes the
   signed offline list the kiosk downloads; and the alert desk's reader of sealed hit
   alerts (``fieldterm alerts``), and the operator's web console (``fieldterm console``,
   its address and a one-time login printed);
6. the supervisor's annunciator panel for the kiosk's lane (``fieldterm provision
   add-annunciator``; the MicroPython code under the unix port, when ``make setup``
   installed it), whose lane light and chime are printed next to the kiosk's screen;
7. the online scans, then a broker outage in which a listed and an unlisted passport are
   answered from the kiosk's offline list and re-checked online when the broker is back.

The script (``host_tools.demo.script``) is a list of steps; the player
(``host_tools.demo.player``) scans each document and waits for what the agent *reports*.
The summary counts what the agent showed, and the exit status is 0 only when every step
showed what it should. ``--interactive`` then opens a small shell
(``host_tools.demo.console``): type MRZ lines, ``ack``, ``status``, ``quit``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from host_tools.demo.console import DemoConsole
from host_tools.demo.panel import DemoPanel, micropython
from host_tools.demo.player import Player
from host_tools.demo.script import EXPECTED, Script, build_script
from host_tools.localregion import LocalRegion, LocalRegionError
from host_tools.localregion.runner import fieldterm_argv

REGION = "demo"
TERMINAL = "kiosk-001"
SITE = "post-1"
PANEL = "panel-1"
RSS_GOAL_MB = 40.0


def say(text: str = "") -> None:
    print(text, flush=True)


class LogFollower:
    """Prints the kiosk's own console (its LEDs and display) as ``kiosk | ...`` lines."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-console", daemon=True)

        self._lock = threading.Lock()
        self._pos = 0
        self._buf = b""

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def catch_up(self) -> None:
        """Print everything the kiosk has written so far (before the player's next line)."""
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
            self._pos += len(data)
            *lines, self._buf = (self._buf + data).split(b"\n")
            for raw in lines:
                say("      kiosk | " + raw.decode(errors="replace").rstrip())

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.catch_up()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.catch_up()


def _summary(
    region: LocalRegion, player: Player, rss_before: dict[str, float], rss: dict[str, float]
) -> None:
    tally = player.tally
    ready = player.agent.ready_event.get("process_age_s")
    base = rss_before.get("rss_mb")
    goal = ""
    if base is not None:
        goal = " (goal 40 MB: met)" if base <= RSS_GOAL_MB else " (goal 40 MB: NOT met)"
    say(
        f"\n  agent: RSS {base} MB before its offline list{goal}, {rss.get('rss_mb')} MB "
        f"at the end with a {region.records:,}-record list mapped (peak "
        f"{rss.get('peak_rss_mb')} MB); ready {ready} s after process start"
    )
    if tally.resolved_late:
        say(f"  resolved online after the fact: {', '.join(tally.resolved_late)}")
    hits = player.online_hits()
    assert region.desk is not None
    try:
        alerts = region.desk.wait_alerts(hits, timeout=15.0)
    except LocalRegionError:
        alerts = region.desk.alerts()
    say(
        f"  alert desk: {len(alerts)} sealed hit alert(s)"
        + "".join(f"; {a['terminal']} {a['status']} ref {a['reference']}" for a in alerts)
    )
    if len(alerts) != hits:
        tally.failures.append(f"the alert desk got {len(alerts)} alert(s) for {hits} hit(s)")


def _verify_audit(region: LocalRegion) -> bool:
    import subprocess  # noqa: PLC0415

    r = subprocess.run(
        fieldterm_argv(
            "audit", "verify",
            "--log", str(region.state_dir(TERMINAL) / "audit.log"),
            "--key", str(region.bundle(TERMINAL) / "audit.key"),
        ),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    say("  " + (r.stdout.strip().splitlines() or [r.stderr.strip()])[-1])
    return r.returncode == 0


def _start_console(region: LocalRegion) -> None:
    """The operator's console beside the desk, with a one-time login for this run."""
    from host_tools.console.process import provision_console, start_console  # noqa: PLC0415

    password = provision_console(region, {"demo": "supervisor"})["demo"]
    # Its own MQTT identity (CN alert-console, from console-cert) beside the desk reader's:
    # on the terminals' listener, where the CN is the client id, both stay connected.
    console = start_console(region)
    say(
        f"  ok  operator console {console.url}/ (log in as demo, password {password}; "
        f"its certificate is from the demo CA {console.ca})"
    )


def _play(region: LocalRegion, player: Player, script: Script) -> None:
    """The whole story: a scan before the service is up, the online scans, an outage."""
    total = 1 + len(script.online) + len(script.outage)
    # 1. The kiosk is up, the region's service is not: no answer and no offline list.
    mark = player.agent.events.mark()
    first = player.play_step(script.before_service, f"1/{total}")
    say("\n== the region's service starts: it answers the waiting scan and publishes the list")
    region.start_regional()
    say("  ok  regional service (ready: its query subscription granted)")
    player.resolve_late(int(first["seq"]), mark, "NO_MATCH")
    lst = player.wait_list(mark)
    say(
        f"  =>  the kiosk installed the offline list ({lst.get('records')} records, "
        f"{float(lst.get('list_age_s') or 0):.0f} s old)"
    )
    region.start_desk()
    say("  ok  alert desk reader (hit alerts sealed to the desk, sent every 2 s)")
    _start_console(region)
    # 2. Online.
    player.play(script.online, 2, total)
    # 3. A broker outage: answers from the offline list, then re-checked online.
    say("\n== a broker outage")
    player.broker_down()
    mark = player.agent.events.mark()
    answered = [
        (player.play_step(step, f"{i}/{total}"), step)
        for i, step in enumerate(script.outage, 2 + len(script.online))
    ]
    player.broker_up()
    for ev, step in answered:
        expect = "POSSIBLE_MATCH" if step.expect == "possible_match_offline" else "NO_MATCH"
        player.resolve_late(int(ev["seq"]), mark, expect)
    # the panel reconnects with backoff (up to 8 s) and shows the lane again
    player.show_panel_state("idle", timeout=30.0)


def _start_panel(region: LocalRegion) -> DemoPanel | None:
    """The annunciator for the kiosk's lane, or None (said why) without MicroPython."""
    exe = micropython()
    if exe is None:
        say("  --  no annunciator panel: the micropython command is not in the venv (make setup)")
        return None
    out = region.dir / "panels" / PANEL
    region.provision_cmd(
        "annunciator panel", "add-annunciator", PANEL, "--site", SITE,
        "--lanes", TERMINAL, "--out", str(out),
    )  # fmt: skip
    return DemoPanel(exe, out, region.dir / f"{PANEL}.log")


def run(region: LocalRegion, *, interactive: bool, seed: int) -> int:
    say("== setting up (throwaway PKI, synthetic list) in " + str(region.dir))
    region.provision(desk=True).generate_list()
    script = build_script(region, random.Random(seed))
    panel = _start_panel(region)  # provisioned before the broker reads its ACL
    try:
        return _run(region, script, panel, interactive=interactive)
    finally:
        if panel is not None:
            panel.close()


def _run(region: LocalRegion, script: Script, panel: DemoPanel | None, *, interactive: bool) -> int:
    say("== starting the broker and the kiosk")
    broker = region.start_broker()
    say(f"  ok  Mosquitto, mutual TLS on 127.0.0.1:{broker.port}")
    if panel is not None:
        if not panel.wait("connected", 30):
            raise LocalRegionError(f"the annunciator panel did not connect: see {panel.log.name}")
        say(
            f"  ok  annunciator {PANEL} (MicroPython unix port, pid {panel.pid}) for site "
            f"{SITE}: lane 1 = {TERMINAL}, over mutual TLS"
        )
    agent = region.start_agent(TERMINAL)
    follower = LogFollower(agent.log).start()
    say(
        f"  ok  kiosk agent (pid {agent.pid}) on scanner {agent.scanner.path}, ready "
        f"{agent.ready_event.get('process_age_s')} s after its process started, broker link up"
    )
    rss_before = agent.rss_mb()  # a kiosk without its list yet: the 40 MB goal
    player = Player(region, agent, say, before_say=follower.catch_up, panel=panel)
    tally = player.tally
    try:
        _play(region, player, script)
        rss = agent.rss_mb()
        lost = player.lost()
        if interactive:
            DemoConsole(player).cmdloop()
        say("\n== shutting down the kiosk agent (SIGTERM: signals off, outbox kept)")
        rc = agent.stop()
    finally:
        follower.close()
    if rc != 0:
        tally.failures.append(f"agent exited with {rc}")
    if not _verify_audit(region):
        tally.failures.append("audit log did not verify")
    _summary(region, player, rss_before, rss)
    s = tally.shown
    say(
        f"demo: {tally.sent} documents, {s['clear']} clear, {s['possible_match']} possible "
        f"match, {s['unknown']} unknown, {s['rescan']} rescan, {tally.offline} offline "
        f"({s['possible_match_offline']} possible match, {s['not_listed']} not listed), "
        f"{lost} lost"
    )
    if lost or s != EXPECTED:
        tally.failures.append("outcomes differ from the expected ones")
    for f in tally.failures:
        say(f"FAIL: {f}")
    return 0 if not tally.failures else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m host_tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--interactive", action="store_true", help="keep running after the script")
    ap.add_argument("--records", type=int, default=200_000, help="SLTD records (200000)")
    ap.add_argument("--seed", type=int, default=2026, help="random seed")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--workdir", type=Path, help="use this directory (default: a new temp dir)")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fieldterm-demo-"))
    region = LocalRegion(
        workdir,
        region=REGION,
        terminals=(TERMINAL,),
        records=args.records,
        seed=args.seed,
        sample_size=50,
        terminal_args={TERMINAL: ["--site", SITE]},  # its lane for the annunciator
        on_step=lambda desc, secs: say(f"  ok  {desc} ({secs:.1f} s)"),
    )
    code = 1
    try:
        code = run(region, interactive=args.interactive, seed=args.seed)
    except LocalRegionError as exc:
        say(f"\ndemo failed: {exc}")
    except KeyboardInterrupt:
        code = 130
    finally:
        region.close()
        if args.keep or code != 0:
            say(f"(working directory kept: {workdir})")
        elif args.workdir is None:
            import shutil  # noqa: PLC0415

            shutil.rmtree(workdir, ignore_errors=True)
    return code
