"""The scanner simulator's own behaviour: sources, junk, truncation, synthetic data."""

from __future__ import annotations

import io
import queue
import random

import pytest

from firmware.errors import OperationError, SetupError
from firmware.mrz import parse
from firmware.scanner.port import ScannerConfig, ScannerReader
from host_tools.sim.cli import _typed_documents
from host_tools.sim.documents import read_documents, synthetic_documents
from host_tools.sim.scanner import ScannerSimulator
from tests.scanner.helpers import DOCS


def test_synthetic_documents_are_valid_and_cover_every_type():
    docs = list(synthetic_documents(random.Random(5), 60))
    results = [parse(d) for d in docs]
    assert all(r.valid for r in results)
    assert {r.to_json()["doc_type"] for r in results} == {"TD1", "TD2", "TD3", "MRVA", "MRVB"}
    again = list(synthetic_documents(random.Random(5), 60))
    assert again == docs  # seeded


def test_junk_never_contains_framing_controls():
    sim = ScannerSimulator("stx", seed=9)
    sent = []
    sim.send_raw = sent.append  # record instead of writing
    for _ in range(200):
        sim.send_junk()
    assert all(j.endswith(b"\r\n") for j in sent)
    assert not any(set(j[:-2]) & {1, 2, 3, 13, 10} for j in sent)


def test_truncated_frames_are_counted_and_reading_goes_on():
    with ScannerSimulator("stx", truncate_rate=1.0, truncate_gap=0.0, seed=4) as sim:
        q: queue.Queue = queue.Queue()
        with ScannerReader(ScannerConfig(port=sim.path, framing="stx"), q.put) as reader:
            sim.send(DOCS["TD3"])  # cut short
            sim.truncate_rate = 0.0
            sim.send(DOCS["TD1"])  # its STX ends the cut frame
            doc = q.get(timeout=10)
            assert doc.lines == tuple(DOCS["TD1"])
            assert reader.health()["bad_frames"] == 1
        assert sim.stats.truncated == 1 and sim.stats.documents == 1


def test_send_without_reader_times_out_and_unplugged_refuses():
    with ScannerSimulator("lines", connect_timeout=0.05) as sim:
        with pytest.raises(OperationError, match="no reader opened"):
            sim.send(DOCS["TD3"])
        sim.unplug()
        with pytest.raises(OperationError, match="unplugged"):
            sim.send(DOCS["TD3"])


def test_bad_options():
    with pytest.raises(SetupError):
        ScannerSimulator("xml")
    with pytest.raises(SetupError):
        ScannerSimulator("lines", host="0.0.0.0")
    with pytest.raises(SetupError):
        ScannerSimulator("lines", junk_rate=2)


def test_read_documents_formats_and_errors(tmp_path):
    p = tmp_path / "mixed.txt"
    p.write_text('["A<<", "B"]\n\nLINE1\nLINE2\n\n\nLINE3\n')
    assert read_documents(p) == [["A<<", "B"], ["LINE1", "LINE2"], ["LINE3"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('["ok"]\n[1, 2]\n')
    with pytest.raises(SetupError, match=r"bad.jsonl:2: expected a JSON array of strings"):
        read_documents(bad)


def test_typed_documents():
    text = "\n".join(DOCS["TD1"]) + "\n" + DOCS["TD3"][0] + "\n\n" + '["X", "Y"]\n'
    assert list(_typed_documents(io.StringIO(text))) == [DOCS["TD1"], DOCS["TD3"][:1], ["X", "Y"]]
