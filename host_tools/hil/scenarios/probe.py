"""Plumbing scenarios with the guest probe (no agent): UART in, GPIO out and in, network.

``probe-raspi3b``: the host writes lines on the PL011, watches the probe toggle a pin over
qtest, drives an input pin and sees the probe mirror it on another pin.
``probe-virt``: lines on the 16550 and a TCP connection through the restricted slirp.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from host_tools.hil.image import GuestFile
from host_tools.hil.qtest import PinRecorder, QtestClient
from host_tools.hil.scenarios.common import Context, ScannerLink, check, wait_until

TOGGLE, FOLLOW, BUTTON = 17, 22, 27


def _probe_file(cfg: Mapping[str, object]) -> GuestFile:
    return GuestFile("/etc/fieldterm-hil/probe.json", json.dumps(cfg).encode())


def run_raspi3b_usbnet(ctx: Context) -> None:
    """Does ``usb-net`` on the dwc2 controller give raspi3b a network? (TCP to the host)."""
    srv, accepted, th = _listener()
    cfg = {"port": "/dev/ttyAMA0", "tcp": "10.0.2.100:1883"}
    try:
        with ctx.raspi3b(
            [_probe_file(cfg)],
            timeout=360,
            cmdline_extra="fieldterm.hil=probe",
            usb_net=[(1883, srv.getsockname()[1])],
        ) as g:
            g.wait_for(r"HIL-READY", 200)
            ctx.timings["ready"] = g.elapsed()
            m = g.wait_for(r"PROBE-NET \w+", 150)
            check(m.group(0) == "PROBE-NET ok" and bool(accepted), f"raspi3b usb-net: {m.group(0)}")
            ctx.note("usb-net on dwc2 reaches the host through guestfwd")
            link = ScannerLink(g.spec.scanner_socket).connect()
            link.send(b"QUIT\r\n")
            g.wait_for(r"PROBE-DONE", 60)
    finally:
        srv.close()
        th.join(timeout=5)


def _listener() -> tuple[socket.socket, list[bool], threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(300)
    accepted: list[bool] = []

    def accept() -> None:
        try:
            conn, _ = srv.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    return srv, accepted, th


def _edges_at_least(rec: PinRecorder, pin: int, n: int) -> Callable[[], bool]:
    return lambda: len(rec.timeline.edges(pin)) >= n


def run_raspi3b(ctx: Context) -> None:
    cfg = {"port": "/dev/ttyAMA0", "toggle": TOGGLE, "follow": FOLLOW, "button": BUTTON}
    with ctx.raspi3b([_probe_file(cfg)], timeout=300, cmdline_extra="fieldterm.hil=probe") as g:
        with QtestClient(g.spec.qtest_socket or Path()) as qt:
            qt.connect(g.deadline)
            rec = PinRecorder(qt, {TOGGLE: "toggle", FOLLOW: "follow", BUTTON: "button"})
            rec.start()
            try:
                g.wait_for(r"HIL-READY", 150)
                ctx.timings["ready"] = g.elapsed()
                g.wait_for(r"PROBE-READY", 120)
                ctx.timings["probe_ready"] = g.elapsed()
                link = ScannerLink(g.spec.scanner_socket).connect()
                # one line at a time: a toggle is only seen if it lasts longer than a poll
                for n in range(1, 4):
                    link.send(b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\r\n")
                    g.wait_for(rf"PROBE-LINE {n} len=44", 60)
                    wait_until(_edges_at_least(rec, TOGGLE, n), 10, f"toggle {n}")
                edges = rec.timeline.edges(TOGGLE)
                check([lvl for _, lvl in edges[:3]] == [True, False, True], f"toggle {edges}")
                ctx.note(f"UART -> GPIO{TOGGLE}: 3 lines, 3 edges seen over qtest")
                t_press = rec.now()
                qt.drive(BUTTON, True)
                wait_until(lambda: rec.timeline.level_at(FOLLOW, 1e9), 30, "follow pin high")
                ctx.note(
                    f"button GPIO{BUTTON} driven high -> GPIO{FOLLOW} high after "
                    f"{rec.now() - t_press:.2f} s"
                )
                qt.drive(BUTTON, False)
                wait_until(lambda: not rec.timeline.level_at(FOLLOW, 1e9), 30, "follow pin low")
                link.send(b"QUIT\r\n")
                g.wait_for(r"PROBE-DONE", 60)
                check(g.wait_exit(90) is not None, "guest did not power off")
                ctx.timings["total"] = g.elapsed()
            finally:
                rec.stop()
                (ctx.rundir / "pins.txt").write_text(rec.timeline.render())


def run_virt(ctx: Context) -> None:
    srv, accepted, th = _listener()
    port = srv.getsockname()[1]
    cfg = {"port": "/dev/ttyS0", "tcp": "10.0.2.100:1883"}
    try:
        with ctx.virt(
            [_probe_file(cfg)],
            timeout=180,
            guestfwd=[(1883, port)],
            cmdline_extra="fieldterm.hil=probe",
        ) as g:
            g.wait_for(r"HIL-READY", 90)
            ctx.timings["ready"] = g.elapsed()
            g.wait_for(r"PROBE-NET ok", 60)
            check(bool(accepted), "host listener saw no connection")
            g.wait_for(r"PROBE-READY", 60)
            link = ScannerLink(g.spec.scanner_socket).connect()
            link.send(b"L898902C36UTO7408122F1204159ZE184226B<<<<<10\r\nQUIT\r\n")
            g.wait_for(r"PROBE-LINE 1 len=44", 30)
            g.wait_for(r"PROBE-DONE", 30)
            check(g.wait_exit(60) is not None, "guest did not power off")
            ctx.timings["total"] = g.elapsed()
            ctx.note("16550 UART and guestfwd to 127.0.0.1 work")
    finally:
        srv.close()
        th.join(timeout=5)
