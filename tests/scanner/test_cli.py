"""``fieldterm scan`` and ``fieldterm sim scanner`` as processes, on real ptys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from host_tools.sim.documents import read_documents
from host_tools.sim.scanner import ScannerSimulator
from tests.scanner.helpers import DOCS

FT = [sys.executable, "-m", "firmware.cli"]
LIMIT = 60  # seconds: a hung process fails the test instead of hanging the suite


def start(args, **kw):
    return subprocess.Popen(
        FT + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def mrz_parse_jsonl(docs):
    out = subprocess.run(
        check=False,
        args=[*FT, "mrz", "parse", "--jsonl"],
        input="".join(json.dumps(d) + "\n" for d in docs),
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


@pytest.mark.parametrize("framing", ["lines", "stx", "rte", "json"])
def test_scan_against_simulator_on_pty(framing):
    sim = start(
        [
            "sim",
            "scanner",
            "--framing",
            framing,
            "--generate",
            "4",
            "--seed",
            "11",
            "--junk-rate",
            "0.5",
            "--doc-delay",
            "0.05",
        ]
    )
    try:
        path = sim.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        scan = subprocess.run(
            check=False,
            args=[*FT, "scan", "--port", path, "--count", "4", "--timeout", "30", "--jsonl"],
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
    finally:
        _out, sim_err = stop(sim)
    assert scan.returncode == 0, scan.stderr
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    assert len(rows) == 4
    assert all(list(r) == ["framing", "lines", "mrz"] and r["framing"] == framing for r in rows)
    assert all(r["mrz"]["valid"] for r in rows)
    # "mrz" is exactly what `fieldterm mrz parse --jsonl` prints for those lines.
    assert [r["mrz"] for r in rows] == mrz_parse_jsonl([r["lines"] for r in rows])
    assert "documents=4" in scan.stderr and f"framing=auto:{framing}" in scan.stderr
    assert "documents=4" in sim_err


def test_scan_timeout_exit_3_and_junk_prints_nothing():
    with ScannerSimulator("stx") as sim:
        scan = start(
            [
                "scan",
                "--port",
                sim.path,
                "--framing",
                "stx",
                "--count",
                "1",
                "--timeout",
                "2",
                "--jsonl",
            ]
        )
        sim.send_raw(b"\x00\xffgarbage\r\n" * 10)  # waits until scan has opened the port
        out, err = scan.communicate(timeout=LIMIT)
    assert scan.returncode == 3
    assert out == ""
    assert "junk_bytes=" in err and "junk_bytes=0 " not in err and "(timeout)" in err


def test_scan_file_source_with_truncation_and_a_bad_mrz(tmp_path):
    bad = list(DOCS["TD3"])
    bad[1] = bad[1][:9] + "X" + bad[1][10:]  # a broken check digit: still printed
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps(DOCS["TD1"]) + "\n" + json.dumps(bad) + "\n")
    plain = tmp_path / "docs.txt"
    plain.write_text("\n".join(DOCS["TD2"]) + "\n\n" + "\n".join(DOCS["MRVA"]) + "\n")
    sim = start(
        [
            "sim",
            "scanner",
            "--framing",
            "rte",
            "--file",
            str(src),
            "--repeat",
            "2",
            "--doc-delay",
            "0.05",
        ]
    )
    try:
        path = sim.stdout.readline().strip()
        scan = subprocess.run(
            check=False,
            args=[
                *FT,
                "scan",
                "--port",
                path,
                "--count",
                "4",
                "--timeout",
                "30",
                "--framing",
                "rte",
                "--jsonl",
            ],
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
    finally:
        stop(sim)
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    assert [r["lines"] for r in rows] == [DOCS["TD1"], bad] * 2
    assert [r["mrz"]["valid"] for r in rows] == [True, False] * 2
    assert "check:document_number" in rows[1]["mrz"]["errors"]
    assert read_documents(plain) == [DOCS["TD2"], DOCS["MRVA"]]


def test_interactive_sim_and_sigusr1_unplug(tmp_path):
    link = tmp_path / "by-id-scanner"
    sim = subprocess.Popen(
        [
            *FT,
            "sim",
            "scanner",
            "--framing",
            "json",
            "--interactive",
            "--link",
            str(link),
            "--replug-after",
            "0.2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    scan = None
    try:
        assert sim.stdout.readline().strip() == str(link)
        scan = start(["scan", "--port", str(link), "--count", "2", "--timeout", "40", "--jsonl"])
        sim.stdin.write("\n".join(DOCS["TD3"]) + "\n")
        sim.stdin.flush()
        first = json.loads(scan.stdout.readline())
        assert first["lines"] == DOCS["TD3"] and first["framing"] == "json"
        os.kill(sim.pid, signal.SIGUSR1)  # unplug; the next document goes after the replug
        sim.stdin.write(json.dumps(DOCS["TD1"]) + "\n")
        sim.stdin.flush()
        out, err = scan.communicate(timeout=LIMIT)
        assert scan.returncode == 0, err
        assert json.loads(out)["lines"] == DOCS["TD1"]
        assert "reopens=1" in err
    finally:
        if scan is not None and scan.poll() is None:
            scan.kill()
        _o, sim_err = stop(sim)
    assert "unplugs=2" in sim_err  # the SIGUSR1 one and the final close
    assert not link.exists()


def test_scan_tcp_port():
    with ScannerSimulator("lines", transport="tcp") as sim:
        scan = start(["scan", "--port", sim.url, "--count", "1", "--timeout", "30", "--jsonl"])
        sim.send(DOCS["MRVB"])
        out, err = scan.communicate(timeout=LIMIT)
    assert scan.returncode == 0, err
    assert json.loads(out)["lines"] == DOCS["MRVB"]


def test_help_texts():
    for args in (["scan", "--help"], ["sim", "scanner", "--help"]):
        out = subprocess.run(
            check=False, args=FT + args, capture_output=True, text=True, timeout=LIMIT
        )
        assert out.returncode == 0 and "--framing" in out.stdout


def test_disconnect_every_document_recovers_each_time(tmp_path):
    link = tmp_path / "usb-Sim_Scanner-if00"
    sim = start(
        [
            "sim",
            "scanner",
            "--framing",
            "rte",
            "--generate",
            "3",
            "--seed",
            "5",
            "--disconnect-every",
            "1",
            "--replug-after",
            "0.3",
            "--link",
            str(link),
        ]
    )
    try:
        assert sim.stdout.readline().strip() == str(link)
        scan = subprocess.run(
            check=False,
            args=[*FT, "scan", "--port", str(link), "--count", "3", "--timeout", "40", "--jsonl"],
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
    finally:
        _o, sim_err = stop(sim)
    assert scan.returncode == 0, scan.stderr
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    assert len(rows) == 3 and all(r["mrz"]["valid"] for r in rows)
    assert "reopens=2" in scan.stderr or "reopens=3" in scan.stderr
    assert "unplugs=4" in sim_err


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_scan_interrupted_prints_counters(inherited):
    # "ignored": started as a script's background job is (SIGINT inherited as SIG_IGN)
    def pre() -> None:
        if inherited == "ignored":
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    with ScannerSimulator("lines") as sim:
        scan = start(["scan", "--port", sim.path, "--jsonl"], preexec_fn=pre)
        try:
            sim.send(DOCS["TD3"])
            first = json.loads(scan.stdout.readline())
            assert first["lines"] == DOCS["TD3"]
            scan.send_signal(signal.SIGINT)
            _out, err = scan.communicate(timeout=LIMIT)
        finally:  # never leave a reader behind on a pty number the next test may get
            if scan.poll() is None:
                scan.kill()
                scan.wait()
    assert scan.returncode == 130
    assert "documents=1" in err and "(interrupted)" in err
