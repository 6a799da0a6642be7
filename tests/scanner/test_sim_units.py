"""The scanner simulator's units on their own contracts: framing (bytes from lines), fault
injection (seeded, no I/O), the transports (a real pty, a real loopback socket) and the
simulator's pacing over a recording transport with a recording sleep."""

from __future__ import annotations

import os
import random
import socket
import time

import pytest

from firmware.errors import OperationError, SetupError
from host_tools.sim.faults import FaultInjector
from host_tools.sim.frames import CONTROL_BYTES, encoder
from host_tools.sim.scanner import ScannerSimulator
from host_tools.sim.transports import PtyTransport, TcpTransport, open_transport

FS, STX, ETX, GS = b"\x1c", b"\x02", b"\x03", b"\x1d"


# -- frames -------------------------------------------------------------------------------
def test_frames_follow_the_published_layouts():
    # docs/DESIGN: plain lines end in CR or CR LF; Access-IS is FS STX line CR .. ETX GS;
    # the JSON style is STX + a JSON object + ETX + CR LF.
    assert encoder("lines")(["AB<", "CD<"]) == b"AB<\r\nCD<\r\n"
    assert encoder("lines", terminator=b"\r")(["AB<"]) == b"AB<\r"
    assert encoder("stx")(["AB<", "CD<"]) == FS + STX + b"AB<\rCD<\r" + ETX + GS
    assert encoder("stx", stx_style="plain")(["AB<"]) == STX + b"AB<\r" + ETX
    assert (
        encoder("json")(["AB<", "CD<"])
        == STX + b'{"type": "MRZ", "data": "AB<\\nCD<"}' + ETX + b"\r\n"
    )
    rte = encoder("rte")(["AB<", "CD<"])
    # 3M RTE: SOH, length, "OU", STX, flag, three CR-ended lines padded with "_" to the
    # 44 characters of a TD3 line (an absent first line is empty), ETX, check character
    body = b"\r" + b"AB<" + b"_" * 41 + b"\r" + b"CD<" + b"_" * 41 + b"\r"
    assert rte[:1] == b"\x01" and rte[2:5] == b"OU" + STX and rte[6:-2] == body
    assert rte[-2:-1] == ETX


def test_an_unknown_framing_names_the_choices():
    with pytest.raises(
        SetupError, match=r"unknown framing 'xml'; use one of lines, stx, rte, json"
    ):
        encoder("xml")


# -- faults -------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["junk_rate", "truncate_rate"])
def test_fault_rates_outside_zero_to_one_are_refused_by_name(field):
    with pytest.raises(SetupError, match=rf"{field} must be within \[0, 1\]"):
        FaultInjector(random.Random(1), **{field: 1.5})


def test_junk_is_bounded_free_of_controls_and_ends_the_line():
    f = FaultInjector(random.Random(3))
    pieces = [f.junk() for _ in range(300)]
    assert all(p.endswith(b"\r\n") and len(p) <= 34 for p in pieces)
    assert not any(set(p[:-2]) & CONTROL_BYTES for p in pieces)
    assert len(f.junk(0)) == 2 and len(f.junk(64)) <= 66


def test_cuts_fall_inside_the_frame_and_are_seeded():
    frame = bytes(range(40))
    a = FaultInjector(random.Random(7), truncate_rate=1.0)
    b = FaultInjector(random.Random(7), truncate_rate=1.0)
    cuts = [a.cut(frame) for _ in range(200)]
    assert cuts == [b.cut(frame) for _ in range(200)]
    assert all(c is not None and 1 <= c <= len(frame) - 2 for c in cuts)
    assert a.cut(b"xy") == 1  # the shortest frame is still cut after its first byte


def test_zero_rates_draw_no_randomness():
    rng = random.Random(11)
    state = rng.getstate()
    f = FaultInjector(rng)
    assert not f.junk_now() and f.cut(b"frame") is None
    assert rng.getstate() == state  # a clean line leaves the seeded sequence alone
    f.junk_rate = 1.0
    assert f.junk_now()


# -- transports ---------------------------------------------------------------------------
def test_pty_link_follows_replugs_and_vanishes_on_unplug(tmp_path):
    link = tmp_path / "usb-Sim_Scanner-if00"
    t = PtyTransport(link)
    t.plug()
    try:
        assert t.plugged and os.path.realpath(link) == os.path.realpath(t.slave_path)
        assert t.path == str(link)
        t.unplug()
        assert not t.plugged and not link.exists() and t.slave_path is None
        t.plug()
        assert os.path.realpath(link) == os.path.realpath(t.slave_path)
    finally:
        t.unplug()
    bare = PtyTransport()
    with pytest.raises(OperationError, match="unplugged"):
        _ = bare.path


def test_pty_waits_for_a_reader_and_passes_bytes_through():
    naps: list[float] = []
    t = PtyTransport(sleep=naps.append)
    t.plug()
    try:
        with pytest.raises(OperationError, match=rf"no reader opened {t.path} within 0.0 s"):
            t.wait_reader(time.monotonic(), 0.0)
        fd = os.open(t.slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            assert t.wait_reader(time.monotonic() + 5, 5.0) is True  # absent before: anew
            assert t.wait_reader(time.monotonic() + 5, 5.0) is False
            t.write(b"P<UTO\r\n", 5.0)
            got = b""
            deadline = time.monotonic() + 5
            while len(got) < 7 and time.monotonic() < deadline:
                try:
                    got += os.read(fd, 64)
                except BlockingIOError:
                    time.sleep(0.01)
            assert got == b"P<UTO\r\n"  # raw: no CR/LF translation, no echo
            assert t.drain(5.0) is True
        finally:
            os.close(fd)
    finally:
        t.unplug()


def test_tcp_serves_loopback_only_and_accepts_one_reader_at_a_time():
    with pytest.raises(SetupError, match="loopback"):
        TcpTransport("0.0.0.0")
    t = TcpTransport()
    t.plug()
    try:
        assert t.port > 0 and t.path == f"socket://127.0.0.1:{t.port}"
        with pytest.raises(OperationError, match=r"no reader connected to socket://127.0.0.1"):
            t.wait_reader(time.monotonic() + 0.05, 0.05)
        reader = socket.create_connection(("127.0.0.1", t.port), timeout=5)
        try:
            assert t.wait_reader(time.monotonic() + 5, 5.0) is True
            assert t.wait_reader(time.monotonic() + 5, 5.0) is False
            t.write(b"L898902C3", 5.0)
            assert reader.recv(64) == b"L898902C3"
        finally:
            reader.close()
        # the reader's close is seen by a later wait, which then waits for a new reader
        deadline = time.monotonic() + 10
        while True:
            try:
                assert t.wait_reader(time.monotonic() + 0.05, 0.05) is False
            except OperationError as exc:
                assert "no reader connected" in str(exc)
                break
            assert time.monotonic() < deadline, "the closed reader was never noticed"
            time.sleep(0.01)
        port = t.port
        t.unplug()
        t.plug()
        assert t.port == port  # replug: the same port again
    finally:
        t.unplug()


def test_unknown_transport_is_refused():
    with pytest.raises(SetupError, match="transport must be pty or tcp, not 'usb'"):
        open_transport("usb")
    with pytest.raises(SetupError, match="transport must be pty or tcp"):
        ScannerSimulator("lines", transport="usb")


# -- the simulator over a recording transport ---------------------------------------------
class RecordingTransport:
    """A cable end that records every write; ``new_reader`` makes the next wait "anew"."""

    def __init__(self) -> None:
        self.plugged = False
        self.writes: list[bytes] = []
        self.new_reader = True
        self.drained = 0

    @property
    def path(self) -> str:
        return "loop://"

    def plug(self) -> None:
        self.plugged = True

    def unplug(self) -> None:
        self.plugged = False

    def wait_reader(self, deadline: float, limit: float) -> bool:
        fresh, self.new_reader = self.new_reader, False
        return fresh

    def write(self, data: bytes, timeout: float) -> None:
        self.writes.append(bytes(data))

    def drain(self, timeout: float) -> bool:
        self.drained += 1
        return True


def sim_over(rec: RecordingTransport, naps: list[float], **kw) -> ScannerSimulator:
    return ScannerSimulator("lines", transport=rec, sleep=naps.append, settle=0.2, **kw)


def test_settle_once_per_reader_then_paced_by_character():
    rec, naps = RecordingTransport(), []
    with sim_over(rec, naps, char_delay=0.001) as sim:
        sim.send(["AB"])
        assert rec.writes == [b"A", b"B", b"\r", b"\n"]
        assert naps == [0.2, 0.001, 0.001, 0.001, 0.001]
        naps.clear()
        sim.send(["C"])
        assert naps == [0.001] * 3  # same reader: no second settle
        rec.new_reader = True
        naps.clear()
        sim.send(["D"])
        assert naps[0] == 0.2
        assert sim.path == sim.url == "loop://"
    assert not rec.plugged and sim.stats.documents == 3 and sim.stats.unplugs == 1


def test_a_cut_frame_is_followed_by_the_gap():
    rec, naps = RecordingTransport(), []
    with sim_over(rec, naps, truncate_rate=1.0, truncate_gap=0.7, seed=5) as sim:
        sent = sim.send(["P<UTOERIKSSON<<ANNA<MARIA"])
        whole = b"P<UTOERIKSSON<<ANNA<MARIA\r\n"
        assert whole.startswith(sent) and 1 <= len(sent) <= len(whole) - 2
        assert rec.writes == [sent] and naps == [0.2, 0.7]
        assert (sim.stats.truncated, sim.stats.documents) == (1, 0)


def test_unplugged_simulator_refuses_and_replug_settles_again():
    rec, naps = RecordingTransport(), []
    sim = sim_over(rec, naps)
    with pytest.raises(OperationError, match="the simulated scanner is unplugged"):
        sim.send(["A"])
    sim.start()
    sim.send(["A"])
    sim.unplug()
    sim.unplug()  # idempotent: counted once
    rec.new_reader = False  # even a transport that saw no new reader: the replug settles
    sim.replug()
    sim.send(["B"])
    assert naps == [0.2, 0.2] and sim.stats.unplugs == 1
    assert sim.drain() is True and rec.drained == 1
    sim.close()
