"""``make demo``: the whole system on one machine, played from a script.

What runs (all on 127.0.0.1, all in a throwaway directory):

1. provisioning: a region CA, one kiosk's bundle, the broker directory, the alert desk
   (``fieldterm provision init / add-terminal / broker-config / alert-desk``);
2. a synthetic SLTD list (``fieldterm sltd generate``) with samples of listed and
   unlisted documents;
3. Mosquitto with mutual TLS from the generated ``mosquitto.conf``;
4. the regional service (``fieldterm regional``) and the alert desk's reader of sealed hit
   alerts (``fieldterm alerts``);
5. the kiosk agent (``fieldterm agent``) with console LEDs and display;
6. a scanner simulator on a pty, which the agent reads as its serial port.

The script then scans documents and waits for what the agent *reports* in its events
file (``[agent] events_file``: one JSON line per state change and verdict; no document
numbers). Outcomes are observed, never assumed: the summary line counts what the agent
showed, and the exit status is 0 only when every step showed what it should.

``--interactive`` keeps everything running after the script: type MRZ lines into the
simulated scanner (a blank line sends), ``ack`` acknowledges a possible match, ``quit``
ends. This module runs the agent as a separate process (host tools never import the
agent), which also lets it measure the agent's memory and start-up time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.mrz import make_td1, parse
from host_tools.mosquitto import Mosquitto, free_port
from host_tools.proc import stop_process

REGION = "demo"
TERMINAL = "kiosk-001"
STEP_TIMEOUT = 30.0


def say(text: str = "") -> None:
    print(text, flush=True)


def fieldterm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "firmware.cli", *args]


def run_step(desc: str, *args: str, cwd: Path | None = None) -> None:
    """Run one fieldterm command; on failure show its output and stop the demo."""
    t0 = time.monotonic()
    r = subprocess.run(fieldterm_cmd(*args), capture_output=True, text=True, cwd=cwd, check=False)
    if r.returncode != 0:
        say(r.stdout[-3000:])
        say(r.stderr[-3000:])
        raise DemoError(f"{desc} failed (exit {r.returncode}): fieldterm {' '.join(args)}")
    say(f"  ok  {desc} ({time.monotonic() - t0:.1f} s)")


class DemoError(RuntimeError):
    """A step of the demo could not run or showed the wrong outcome."""


class EventTail:
    """Follows the agent's events file; ``wait(pred)`` returns the first new match."""

    def __init__(self, path: Path):
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._pos = 0
        self._buf = b""

    def poll(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        if not self.path.exists():
            return new
        with self.path.open("rb") as fh:
            fh.seek(self._pos)
            data = fh.read()
        self._pos += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            if raw.strip():
                new.append(json.loads(raw))
        self.events.extend(new)
        return new

    def wait(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            self.poll()
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for the agent")
            time.sleep(0.05)


@dataclass
class Step:
    title: str
    lines: list[str]
    expect: str  # clear, possible_match, unknown, rescan
    note: str = ""
    outage: bool = False
    ack: bool = False


@dataclass
class Tally:
    sent: int = 0
    shown: dict[str, int] = field(
        default_factory=lambda: {"clear": 0, "possible_match": 0, "unknown": 0, "rescan": 0}
    )
    resolved_late: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Demo:
    """Sets up, runs and tears down everything (see the module docstring)."""

    def __init__(self, workdir: Path, *, records: int, seed: int):
        self.dir = workdir
        self.records = records
        self.seed = seed
        self.rng = random.Random(seed)
        self.port = free_port()
        self.broker: Mosquitto | None = None
        self.regional: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.desk: subprocess.Popen[bytes] | None = None
        self.sim: Any = None
        self.tail = EventTail(self.dir / "events.jsonl")
        self._agent_out: threading.Thread | None = None
        self.agent_started = 0.0
        self.measure: dict[str, Any] = {}

    # -- set-up -----------------------------------------------------------------------------
    def provision(self) -> None:
        say("== setting up (throwaway PKI, synthetic list) in " + str(self.dir))
        reg = self.dir / "registry"
        pw = self.dir / "passphrase"
        pw.write_text("demo passphrase, throwaway\n")
        pw.chmod(0o600)
        common = ["provision", "--registry", str(reg), "--passphrase-file", str(pw)]
        run_step(
            "region CA and keys",
            *common,
            "init",
            "--region",
            REGION,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        )
        run_step("kiosk bundle", *common, "add-terminal", TERMINAL, "--out", str(self.kiosk))
        run_step(
            "broker directory",
            *common,
            "broker-config",
            "--out",
            str(self.brokerdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        )
        run_step("alert desk", *common, "alert-desk", "--out", str(self.dir / "desk"))
        run_step(
            f"synthetic SLTD list ({self.records:,} records)",
            "sltd",
            "generate",
            "--records",
            str(self.records),
            "--seed",
            str(self.seed),
            "--out",
            str(self.sltd_db),
            "--force",
            "--no-progress",
            "--listed-sample",
            str(self.dir / "listed.jsonl"),
            "--unlisted-sample",
            str(self.dir / "unlisted.jsonl"),
            "--sample-size",
            "50",
        )

    @property
    def kiosk(self) -> Path:
        return self.dir / "kiosk"

    @property
    def brokerdir(self) -> Path:
        return self.dir / "broker"

    @property
    def sltd_db(self) -> Path:
        return self.brokerdir / "sltd.sqlite"

    def start_services(self) -> None:
        say("== starting services")
        self.start_broker()
        self.start_regional()
        self.start_desk()
        self.start_scanner()
        self.start_agent()

    def start_broker(self) -> None:
        conf = (self.brokerdir / "mosquitto.conf").read_text()
        self.broker = Mosquitto(self.brokerdir, port=self.port, conf_text=conf)
        self.broker.start()
        say(f"  ok  Mosquitto, mutual TLS on 127.0.0.1:{self.port}")

    def start_regional(self) -> None:
        self.regional = subprocess.Popen(
            fieldterm_cmd("regional", "--config", str(self.brokerdir / "regional.toml")),
            stdout=open(self.dir / "regional.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_regional()
        say("  ok  regional service")

    def start_desk(self) -> None:
        self.desk = subprocess.Popen(
            fieldterm_cmd("alerts", "--config", str(self.dir / "desk" / "desk.toml"), "--json"),
            stdout=open(self.dir / "desk-alerts.jsonl", "ab"),
            stderr=open(self.dir / "desk.log", "ab"),
            start_new_session=True,
        )
        log = self.dir / "desk.log"
        until = time.monotonic() + 30
        while "receiving alert batches" not in log.read_text():  # subscribed, hears the region
            if self.desk.poll() is not None or time.monotonic() > until:
                raise DemoError("the alert desk reader did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.1)
        say("  ok  alert desk reader (hit alerts sealed to the desk, sent every 2 s)")

    def desk_alerts(self, expected: int, within: float = 15.0) -> list[dict[str, Any]]:
        """The alerts the desk printed, waiting (bounded) until ``expected`` have come."""
        path = self.dir / "desk-alerts.jsonl"
        until = time.monotonic() + within
        while True:
            text = path.read_text() if path.exists() else ""
            got = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(got) >= expected or time.monotonic() > until:
                return got
            time.sleep(0.2)

    def start_scanner(self) -> None:
        from host_tools.sim.scanner import ScannerSimulator  # noqa: PLC0415

        self.sim = ScannerSimulator("lines", transport="pty").start()
        say(f"  ok  scanner simulator on {self.sim.path}")

    def _wait_regional(self) -> None:
        """Ready when its health file says so (or, failing that, once it stays up)."""
        health = self.brokerdir / "regional-health.json"
        deadline = time.monotonic() + STEP_TIMEOUT
        assert self.regional is not None
        while time.monotonic() < deadline:
            if self.regional.poll() is not None:
                raise DemoError(
                    f"regional service exited with {self.regional.returncode}:\n"
                    + (self.dir / "regional.log").read_text()[-3000:]
                )
            with contextlib.suppress(OSError, ValueError):
                if _healthy(json.loads(health.read_text())):
                    time.sleep(0.5)  # "connected" comes just before its SUBACK
                    return
            time.sleep(0.1)
        raise DemoError("the regional service did not report ready")

    def start_agent(self) -> None:
        env = dict(os.environ)
        env["FIELDTERM_AGENT__RETRY_INTERVAL"] = "2"
        env["FIELDTERM_AGENT__RESULT_HOLD"] = "1.5"
        env["FIELDTERM_AGENT__UNKNOWN_HOLD"] = "2"
        env["FIELDTERM_AGENT__RESCAN_HOLD"] = "1.5"
        env.pop("NOTIFY_SOCKET", None)
        self.tail.poll()
        start = len(self.tail.events)
        self.agent_started = time.monotonic()
        self.agent = subprocess.Popen(
            fieldterm_cmd(
                "agent",
                "--config",
                str(self.kiosk / "terminal.toml"),
                "--signals",
                "console",
                "--display",
                "console",
                "--scanner-port",
                self.sim.path,
                "--state-dir",
                str(self.dir / "state"),
                "--events-file",
                str(self.tail.path),
            ),
            stdin=subprocess.DEVNULL,  # the demo reads the keyboard; acknowledge is SIGUSR1
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._agent_out = threading.Thread(target=self._pump, args=(self.agent,), daemon=True)
        self._agent_out.start()
        ev = self.tail.wait(lambda e: e["event"] == "ready", STEP_TIMEOUT, start=start)
        self.measure["ready_s"] = ev.get("process_age_s")
        self.tail.wait(lambda e: e["event"] == "link" and e["up"], STEP_TIMEOUT, start=start)
        say(
            f"  ok  kiosk agent (pid {self.agent.pid}), ready "
            f"{ev.get('process_age_s')} s after its process started, broker link up"
        )

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            say("      kiosk | " + raw.decode(errors="replace").rstrip())

    # -- the script ---------------------------------------------------------------------------
    def script(self) -> list[Step]:
        listed = [x for x in _read_samples(self.dir / "listed.jsonl") if len(x) == 2]
        unlisted = _read_samples(self.dir / "unlisted.jsonl")
        td3 = [x for x in unlisted if len(x) == 2 and len(x[0]) == 44]
        td1 = [x for x in unlisted if len(x) == 3]
        if not listed or len(td3) < 4:
            raise DemoError("the SLTD samples have too few documents for the script")
        if not td1:
            td1 = [make_td1(document_number="ZQ" + str(self.rng.randrange(10**7)).zfill(7))]
        pool = list(td3)

        def take(fn: Callable[[list[str]], list[str]] = lambda x: x) -> list[str]:
            for i, doc in enumerate(pool):
                with contextlib.suppress(DemoError):
                    made = fn(doc)
                    del pool[i]
                    return made
            raise DemoError("no sample document fits the script")

        return [
            Step("a passport that is not on the list", take(), "clear"),
            Step(
                "a stolen passport (on the list)",
                listed[0],
                "possible_match",
                note="the officer presses acknowledge",
                ack=True,
            ),
            Step("an identity card (TD1, three lines)", td1[0], "clear"),
            Step("a passport with a bad check digit", take(_bad_check_digit), "rescan"),
            Step(
                "a passport read with an OCR error (O for 0)",
                take(_ocr_error),
                "clear",
                note="repair mode fixes it using the check digits",
            ),
            Step(
                "a passport during a broker outage",
                take(),
                "unknown",
                outage=True,
                note="the broker is stopped; the scan waits in the outbox",
            ),
        ]

    def play(self, steps: Sequence[Step]) -> Tally:
        tally = Tally()
        for i, step in enumerate(steps, 1):
            say(f"\n== [{i}/{len(steps)}] {step.title}")
            for line in step.lines:
                say(f"      scan  | {line}")
            if step.note:
                say(f"      note  | {step.note}")
            if step.outage:
                self._broker_down()
            mark = len(self.tail.events)
            self.sim.send(step.lines)
            tally.sent += 1
            shown = self._outcome(mark)
            time.sleep(0.3)  # let the kiosk's own console lines for this step print first
            tally.shown[shown] = tally.shown.get(shown, 0) + 1
            ok = shown == step.expect
            say(
                f"  =>  shown: {shown.upper().replace('_', ' ')}"
                f"{'' if ok else f'   (expected {step.expect.upper()})'}"
            )
            if not ok:
                tally.failures.append(f"step {i}: showed {shown}, expected {step.expect}")
            if step.ack and shown == "possible_match":
                self._acknowledge()
            if step.outage:
                self._broker_up_and_resolve(mark, tally)
        return tally

    def _outcome(self, mark: int, timeout: float = STEP_TIMEOUT) -> str:
        results = ("clear", "possible_match", "unknown", "rescan")
        ev = self.tail.wait(
            lambda e: e["event"] == "state" and e["after"] in results and not e.get("late"),
            timeout,
            start=mark,
        )
        return str(ev["after"])

    def _acknowledge(self) -> None:
        assert self.agent is not None
        time.sleep(1.0)  # let the latched screen be seen
        mark = len(self.tail.events)
        self.agent.send_signal(signal.SIGUSR1)
        self.tail.wait(
            lambda e: e["event"] == "state" and e["cause"] == "acknowledged",
            STEP_TIMEOUT,
            start=mark,
        )
        say("  =>  acknowledged: back to IDLE")

    def _broker_down(self) -> None:
        assert self.broker is not None
        mark = len(self.tail.events)
        self.broker.stop()
        say("      event | broker stopped")
        self.tail.wait(lambda e: e["event"] == "link" and not e["up"], STEP_TIMEOUT, start=mark)
        say("      event | the kiosk noticed: link down")

    def _broker_up_and_resolve(self, mark: int, tally: Tally) -> None:
        assert self.broker is not None
        doc = self.tail.wait(lambda e: e["event"] == "document", STEP_TIMEOUT, start=mark)
        time.sleep(1.0)
        self.broker.start()
        say("      event | broker back")
        ev = self.tail.wait(
            lambda e: e["event"] == "verdict" and e.get("seq") == doc.get("seq"),
            STEP_TIMEOUT * 2,
            start=mark,
        )
        shown = [
            e
            for e in self.tail.events[mark:]
            if e["event"] == "state" and e.get("seq") == ev["seq"] and e.get("late")
        ]
        how = (
            f"its screen turns from UNKNOWN to {shown[-1]['after'].upper()} (marked late)"
            if shown
            else "shown as a 'pending resolved' notice under the current screen"
        )
        say(
            f"  =>  pending query resolved after the outage: {ev['outcome']} (scan #{ev['seq']}: {how})"
        )
        tally.resolved_late.append(str(ev["outcome"]))
        if ev["outcome"] != "NO_MATCH":
            tally.failures.append(f"outage document resolved as {ev['outcome']}")

    # -- summary and measurements -------------------------------------------------------------
    def lost(self, tally: Tally) -> int:
        """Scans sent but never seen by the agent, plus accepted ones with no final verdict."""
        self.tail.poll()
        docs = [e for e in self.tail.events if e["event"] == "document"]
        accepted = {e["qid"] for e in docs if e.get("valid")}
        answered = {e["qid"] for e in self.tail.events if e["event"] == "verdict"}
        return (tally.sent - len(docs)) + len(accepted - answered)

    def measure_agent(self) -> None:
        assert self.agent is not None
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{self.agent.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key = "rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"
                    self.measure[key] = round(int(line.split()[1]) / 1024, 1)

    def verify_audit(self) -> bool:
        r = subprocess.run(
            fieldterm_cmd(
                "audit",
                "verify",
                "--log",
                str(self.dir / "state" / "audit.log"),
                "--key",
                str(self.kiosk / "audit.key"),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        say("  " + (r.stdout.strip().splitlines() or [r.stderr.strip()])[-1])
        return r.returncode == 0

    # -- interactive ------------------------------------------------------------------------
    def interactive(self) -> None:
        say("\n== interactive: type MRZ lines (a blank line sends them), 'ack', or 'quit'")
        buf: list[str] = []
        for raw in sys.stdin:
            text = raw.strip()
            if text.lower() in ("quit", "exit"):
                break
            if text.lower() == "ack" and self.agent is not None:
                self.agent.send_signal(signal.SIGUSR1)
                say("  =>  acknowledge sent")
                continue
            if text:
                buf.append(text)
            if buf and (not text or (len(buf) == 2 and len(buf[0]) >= 36) or len(buf) == 3):
                mark = len(self.tail.events)
                self.sim.send(buf)
                buf = []
                try:
                    say(f"  =>  shown: {self._outcome(mark, 8.0).upper().replace('_', ' ')}")
                except DemoError:
                    say("  =>  no outcome yet (a possible match waiting to be acknowledged?)")

    # -- tear-down --------------------------------------------------------------------------
    def stop_agent(self) -> int | None:
        if self.agent is None:
            return None
        rc = stop_process(self.agent)
        if self._agent_out is not None:
            self._agent_out.join(timeout=5)
        return rc

    def close(self) -> None:
        self.stop_agent()
        if self.desk is not None:
            stop_process(self.desk, grace=10)
        if self.sim is not None:
            self.sim.close()
        if self.regional is not None:
            stop_process(self.regional)
        if self.broker is not None:
            self.broker.stop()


def _healthy(h: Any) -> bool:
    """Read the regional's health file leniently: a flag, a status word, or just present."""
    if not isinstance(h, dict):
        return False
    for key in ("connected", "ready", "ok"):
        if key in h:
            return bool(h[key])
    for key in ("status", "state"):
        if key in h:
            return str(h[key]).lower() in ("ok", "ready", "running", "connected", "up", "serving")
    return True


def _read_samples(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _bad_check_digit(lines: list[str]) -> list[str]:
    """Change the document number's check digit so that no OCR repair can explain it."""
    body = lines[1]
    for d in "3467":
        bad = [lines[0], body[:9] + d + body[10:]]
        if bad != lines and not parse(bad, "repair").valid:
            return bad
    raise DemoError("could not make a bad-check-digit document")


def _ocr_error(lines: list[str]) -> list[str]:
    """Read one 0 as O (document number first, else the birth date): repair must fix it."""
    body = lines[1]
    candidates = [i for i in range(0, 9) if body[i] == "0"] + [
        i for i in range(13, 19) if body[i] == "0"
    ]
    for i in candidates:
        bad = [lines[0], body[:i] + "O" + body[i + 1 :]]
        r = parse(bad, "repair")
        if (
            not parse(bad, "strict").valid
            and r.valid
            and r.document_number == parse(lines).document_number
        ):
            return bad
    raise DemoError("no zero to misread in the sample document")


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
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o711)  # Mosquitto drops to its own user and must reach broker/
    demo = Demo(workdir, records=args.records, seed=args.seed)
    code = 1
    try:
        demo.provision()
        demo.start_services()
        steps = demo.script()
        tally = demo.play(steps)
        demo.measure_agent()
        time.sleep(0.5)
        lost = demo.lost(tally)
        if args.interactive:
            demo.interactive()
        say("\n== shutting down the kiosk agent (SIGTERM: signals off, outbox kept)")
        rc = demo.stop_agent()
        if rc != 0:
            tally.failures.append(f"agent exited with {rc}")
        audit_ok = demo.verify_audit()
        if not audit_ok:
            tally.failures.append("audit log did not verify")
        s = tally.shown
        say(
            f"\n  agent: RSS {demo.measure.get('rss_mb')} MB (peak {demo.measure.get('peak_rss_mb')} MB), "
            f"ready {demo.measure.get('ready_s')} s after process start"
        )
        if tally.resolved_late:
            say(f"  pending resolved after the outage: {', '.join(tally.resolved_late)}")
        alerts = demo.desk_alerts(s.get("possible_match", 0))
        say(
            f"  alert desk: {len(alerts)} sealed hit alert(s)"
            + "".join(f"; {a['terminal']} {a['status']} ref {a['reference']}" for a in alerts)
        )
        if len(alerts) != s.get("possible_match", 0):
            tally.failures.append(
                f"the alert desk got {len(alerts)} alert(s) for {s.get('possible_match', 0)} hit(s)"
            )
        say(
            f"demo: {tally.sent} documents, {s['clear']} clear, {s['possible_match']} possible "
            f"match, {s['unknown']} unknown, {s['rescan']} rescan, {lost} lost"
        )
        expected = {"clear": 3, "possible_match": 1, "unknown": 1, "rescan": 1}
        if lost or {k: s.get(k, 0) for k in expected} != expected:
            tally.failures.append("outcomes differ from the expected ones")
        for f in tally.failures:
            say(f"FAIL: {f}")
        code = 0 if not tally.failures else 1
    except DemoError as exc:
        say(f"\ndemo failed: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        demo.close()
        if args.keep or code != 0:
            say(f"(working directory kept: {workdir})")
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
