"""``make demo``: the whole system on one machine, played from a script.

What runs (all on 127.0.0.1, all in a throwaway directory), through
:class:`host_tools.localregion.LocalRegion`:

1. provisioning: a region CA, one kiosk's bundle, the broker directory, the alert desk
   (``fieldterm provision init / add-terminal / broker-config / alert-desk``);
2. a synthetic SLTD list (``fieldterm sltd generate``) with samples of listed and
   unlisted documents;
3. Mosquitto with mutual TLS from the generated ``mosquitto.conf``;
4. the regional service (``fieldterm regional``) and the alert desk's reader of sealed hit
   alerts (``fieldterm alerts``);
5. the kiosk agent (``fieldterm agent``) with console LEDs and display;
6. a scanner simulator on a pty, which the agent reads as its serial port.

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
from host_tools.demo.player import Player, Tally
from host_tools.demo.script import EXPECTED, build_script
from host_tools.localregion import LocalRegion, LocalRegionError
from host_tools.localregion.runner import fieldterm_argv

REGION = "demo"
TERMINAL = "kiosk-001"
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


def _summary(region: LocalRegion, player: Player, tally: Tally, rss: dict[str, float]) -> None:
    s = tally.shown
    ready = player.agent.ready_event.get("process_age_s")
    rss_now = rss.get("rss_mb")
    goal = (
        ""
        if rss_now is None
        else (" (goal 40 MB: met)" if rss_now <= RSS_GOAL_MB else " (goal 40 MB: NOT met)")
    )
    say(
        f"\n  agent: RSS {rss_now} MB{goal} (peak {rss.get('peak_rss_mb')} MB), "
        f"ready {ready} s after process start"
    )
    if tally.resolved_late:
        say(f"  pending resolved after the outage: {', '.join(tally.resolved_late)}")
    hits = s.get("possible_match", 0)
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


def run(region: LocalRegion, *, interactive: bool, seed: int) -> int:
    say("== setting up (throwaway PKI, synthetic list) in " + str(region.dir))
    region.provision(desk=True).generate_list()
    say("== starting services")
    broker = region.start_broker()
    say(f"  ok  Mosquitto, mutual TLS on 127.0.0.1:{broker.port}")
    region.start_regional()
    say("  ok  regional service (ready: its query subscription granted)")
    region.start_desk()
    say("  ok  alert desk reader (hit alerts sealed to the desk, sent every 2 s)")
    agent = region.start_agent(TERMINAL)
    follower = LogFollower(agent.log).start()
    say(
        f"  ok  kiosk agent (pid {agent.pid}) on scanner {agent.scanner.path}, ready "
        f"{agent.ready_event.get('process_age_s')} s after its process started, broker link up"
    )
    player = Player(region, agent, say, before_say=follower.catch_up)
    try:
        tally = player.play(build_script(region, random.Random(seed)))
        rss = agent.rss_mb()
        lost = player.lost(tally)
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
    _summary(region, player, tally, rss)
    s = tally.shown
    say(
        f"demo: {tally.sent} documents, {s['clear']} clear, {s['possible_match']} possible "
        f"match, {s['unknown']} unknown, {s['rescan']} rescan, {lost} lost"
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
