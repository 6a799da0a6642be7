"""The port reader over real ptys (made by the simulator), TCP and loop://; backoff; config."""

from __future__ import annotations

import queue
import random
import time
from pathlib import Path

import pytest
import serial

from firmware.config import Section
from firmware.errors import ConfigError
from firmware.scanner import framing_lines
from firmware.scanner.port import Backoff, ScannerConfig, ScannerReader
from host_tools.sim.scanner import ScannerSimulator
from tests.scanner.helpers import DOCS

WAIT = 10.0  # bounded waits for a thread to deliver; no assertion depends on timing


def wait_until(cond, what):
    """Bounded wait for another thread's progress (not a timing assertion)."""
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT} s")
        time.sleep(0.005)


def get(q, what="a document"):
    try:
        return q.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail(f"no {what} within {WAIT} s")


@pytest.mark.parametrize(
    ("framing", "style"),
    [
        ("lines", "accessis"),
        ("stx", "accessis"),
        ("stx", "plain"),
        ("rte", "accessis"),
        ("json", "accessis"),
    ],
)
@pytest.mark.parametrize("configured", ["auto", "own"])
def test_every_framing_over_a_real_pty(framing, style, configured):
    with ScannerSimulator(framing, stx_style=style, seed=1, junk_rate=1.0) as sim:
        q: queue.Queue = queue.Queue()
        cfg = ScannerConfig(port=sim.path, framing=framing if configured == "own" else "auto")
        with ScannerReader(cfg, q.put) as reader:
            order = ["TD3", "TD1", "TD2", "MRVA", "MRVB"]
            for name in order:
                sim.send(DOCS[name])
            got = [get(q) for _ in order]
            assert [d.lines for d in got] == [tuple(DOCS[n]) for n in order]
            assert all(d.framing == framing and d.mrz.valid for d in got)
            h = reader.health()
            assert h["connected"] and h["documents"] == 5 and h["junk_bytes"] > 0
            assert h["framing"] == (f"auto:{framing}" if configured == "auto" else framing)


def test_frames_split_with_character_delay_over_pty():
    with ScannerSimulator("rte", char_delay=0.0005) as sim:
        q: queue.Queue = queue.Queue()
        with ScannerReader(ScannerConfig(port=sim.path, framing="auto"), q.put):
            sim.send(DOCS["TD1"])
            assert get(q).lines == tuple(DOCS["TD1"])


def test_unplug_and_replug_recovers(tmp_path):
    link = tmp_path / "usb-Sim_Scanner-if00"
    with ScannerSimulator("stx", link=link) as sim:
        first_slave = sim.slave_path
        q: queue.Queue = queue.Queue()
        backoff = Backoff(initial=0.02, maximum=0.2, rng=random.Random(3))
        errors: queue.Queue = queue.Queue()
        cfg = ScannerConfig(port=str(link), framing="stx")
        with ScannerReader(cfg, q.put, backoff=backoff, on_frame_error=errors.put) as reader:
            sim.send(DOCS["TD3"])
            assert get(q).lines == tuple(DOCS["TD3"])
            # Half a frame, then the cable is pulled.
            sim.send_raw(sim.encode(DOCS["TD1"])[:25])
            # A pty drops what the reader has not read yet when it closes; let it read.
            wait_until(lambda: reader.framer.in_frame, "the reader taking the half frame")
            sim.unplug()
            assert not link.exists()
            assert "cut short" in str(get(errors, "framing error"))
            sim.replug()
            assert link.resolve() == Path(sim.slave_path).resolve()
            sim.send(DOCS["TD2"])  # waits until the reader has re-opened the port
            assert get(q).lines == tuple(DOCS["TD2"])
            h = reader.health()
            assert h["connected"] and h["reopens"] == 1 and h["bad_frames"] == 1
            assert h["last_error"]
        assert first_slave  # the pty number may be reused; the link is what readers open


def test_missing_device_is_retried_until_it_appears(tmp_path):
    link = tmp_path / "scanner"
    q: queue.Queue = queue.Queue()
    cfg = ScannerConfig(port=str(link), framing="lines")
    backoff = Backoff(initial=0.02, maximum=0.1, rng=random.Random(1))
    with ScannerReader(cfg, q.put, backoff=backoff) as reader:
        sim = ScannerSimulator("lines", link=link)
        try:
            sim.start()
            sim.send(DOCS["TD3"])
            assert get(q).lines == tuple(DOCS["TD3"])
            h = reader.health()
            assert h["opens"] == 1 and h["reopens"] == 0
        finally:
            sim.close()


def test_tcp_transport_and_reconnect():
    with ScannerSimulator("json", transport="tcp") as sim:
        assert sim.url.startswith("socket://127.0.0.1:")
        q: queue.Queue = queue.Queue()
        backoff = Backoff(initial=0.02, maximum=0.1, rng=random.Random(2))
        with ScannerReader(ScannerConfig(port=sim.url), q.put, backoff=backoff) as reader:
            sim.send(DOCS["MRVA"])
            assert get(q).lines == tuple(DOCS["MRVA"])
            sim.unplug()
            sim.replug()
            sim.send(DOCS["TD1"])
            assert get(q).lines == tuple(DOCS["TD1"])
            assert reader.health()["reopens"] >= 1


def test_loop_url_and_callback_errors_do_not_stop_reader():
    opened = []

    def open_loop(cfg):
        port = serial.serial_for_url("loop://", timeout=0.05)
        opened.append(port)
        return port

    q: queue.Queue = queue.Queue()
    calls = []

    def on_doc(doc):
        calls.append(doc)
        if len(calls) == 1:
            raise RuntimeError("agent bug")
        q.put(doc)

    with ScannerReader(
        ScannerConfig(port="loop://", framing="lines"), on_doc, open_port=open_loop
    ) as r:
        wait_until(lambda: opened, "the reader opening loop://")
        opened[0].write(framing_lines.encode(DOCS["TD3"]) * 2)
        assert get(q).lines == tuple(DOCS["TD3"])
        assert r.health()["callback_errors"] == 1


def test_close_is_idempotent_and_bounded():
    r = ScannerReader(
        ScannerConfig(port="/nonexistent/scanner"),
        lambda d: None,
        backoff=Backoff(initial=0.01, maximum=0.05, rng=random.Random(0)),
    )
    r.start()
    wait_until(lambda: r.health()["last_error"], "a failed open")
    h = r.health()
    assert "nonexistent" in h["last_error"] and not h["connected"] and h["running"]
    r.close()
    r.close()
    assert r.health()["running"] is False and r.health()["opens"] == 0


def test_backoff_is_bounded_exponential_with_jitter():
    b = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.25, rng=random.Random(42))
    delays = [b.next_delay() for _ in range(12)]
    caps = [min(2.0, 0.1 * 2**n) for n in range(12)]
    for d, cap in zip(delays, caps, strict=True):
        assert cap * 0.75 <= d <= cap
    assert max(delays) <= 2.0 and delays[-1] >= 1.5
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_delay() <= 0.1
    again = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.25, rng=random.Random(42))
    assert [again.next_delay() for _ in range(12)] == delays


def test_config_from_section_and_errors():
    sec = Section(
        "scanner",
        {"port": "socket://127.0.0.1:9", "baud": 256000, "parity": "O"},
        "terminal.toml",
        Path("/"),
    )
    cfg = ScannerConfig.from_section(sec)
    assert (cfg.port, cfg.framing, cfg.baud, cfg.parity, cfg.bytesize, cfg.stopbits) == (
        "socket://127.0.0.1:9",
        "auto",
        256000,
        "O",
        8,
        1,
    )
    sec.check_unknown()
    with pytest.raises(ConfigError, match=r"terminal.toml: scanner.framing: 'xml' is not one of"):
        ScannerConfig.from_section(
            Section(
                "scanner",
                {"port": "x", "framing": "xml"},
                "terminal.toml",
                Path("/"),
            )
        )
    with pytest.raises(ConfigError, match=r"scanner\.parity"):
        ScannerConfig(port="x", parity="M")
    with pytest.raises(ConfigError, match=r"scanner\.port"):
        ScannerConfig(port="")
    with pytest.raises(ConfigError, match=r"scanner\.idle_timeout"):
        ScannerConfig(port="x", idle_timeout=0)


def test_256000_8o1_config_opens_a_pty():
    with ScannerSimulator("json") as sim:
        q: queue.Queue = queue.Queue()
        cfg = ScannerConfig(port=sim.path, baud=256000, parity="O")
        with ScannerReader(cfg, q.put):
            sim.send(DOCS["TD3"])
            assert get(q).lines == tuple(DOCS["TD3"])


def test_idle_timeout_runs_on_the_injected_clock():
    now = [1000.0]
    with ScannerSimulator("lines") as sim:
        q: queue.Queue = queue.Queue()
        cfg = ScannerConfig(port=sim.path, framing="lines", idle_timeout=0.5)
        with ScannerReader(cfg, q.put, clock=lambda: now[0]) as reader:
            sim.send(DOCS["TD1"][:2])  # a partial TD1: two of three lines
            wait_until(lambda: reader.framer.buffered > 0, "the reader taking the lines")
            assert q.empty()  # the fake clock has not moved: no idle gap yet
            now[0] += 0.6
            doc = get(q, "the partial document")
            assert doc.lines == tuple(DOCS["TD1"][:2]) and not doc.mrz.valid
