"""Auto-detection: the right framing from the first document, and re-detection."""

from __future__ import annotations

import pytest

from firmware.scanner import AutoFramer, auto, make_framer, sniff
from tests.scanner.helpers import DOCS, ENCODERS, framing_of, junk_for


@pytest.mark.parametrize("style", sorted(ENCODERS))
@pytest.mark.parametrize("doc_type", ["TD1", "TD3", "MRVB"])
def test_first_document_picks_framing(style, doc_type):
    data = ENCODERS[style](DOCS[doc_type])
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        f = AutoFramer()
        docs = []
        for c in chunks:
            docs += f.feed(c, 0.0)
        assert [(d.framing, d.lines) for d in docs] == [(framing_of(style), tuple(DOCS[doc_type]))]
        assert f.framing == framing_of(style)
        assert f.switches == 0


@pytest.mark.parametrize("style", sorted(ENCODERS))
def test_junk_before_first_document(style):
    f = make_framer("auto")
    docs = f.feed(junk_for(style) * 3 + ENCODERS[style](DOCS["TD2"]), 0.0)
    assert [d.framing for d in docs] == [framing_of(style)]
    assert f.counters()["junk_bytes"] > 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("lines-crlf", "stx-accessis"),
        ("stx-plain", "json"),
        ("json", "rte"),
        ("rte", "lines-cr"),
        ("stx-accessis", "lines-lf"),
        ("lines-lf", "rte"),
    ],
)
def test_sticks_until_contradicted(first, second):
    f = AutoFramer()
    got = []
    t = 0.0
    for _ in range(3):
        got += f.feed(ENCODERS[first](DOCS["TD3"]), t)
        t += 1.0
        got += f.poll(t)
    assert [d.framing for d in got] == [framing_of(first)] * 3
    # The reader is swapped for another model: the stream contradicts the choice.
    for _ in range(3):
        got += f.feed(ENCODERS[second](DOCS["TD1"]), t)
        t += 1.0
        got += f.poll(t)
    assert [d.lines for d in got[3:]] == [tuple(DOCS["TD1"])] * 3
    assert [d.framing for d in got[3:]] == [framing_of(second)] * 3
    assert f.framing == framing_of(second) and f.switches == 1


def test_junk_between_documents_does_not_switch():
    f = AutoFramer()
    docs = []
    for _ in range(5):
        docs += f.feed(ENCODERS["rte"](DOCS["TD3"]) + b"\x00\xff\r\n", 0.0)
    assert [d.framing for d in docs] == ["rte"] * 5 and f.switches == 0


def test_sniff_positions():
    assert sniff(b"xx\x01\x20OU\x02") == ("rte", 2)
    assert sniff(b"\x1c\x02P<") == ("stx", 1)
    assert sniff(b"\x02 {") == ("json", 0)
    assert sniff(b"OK\r\n" + b"P<" * 20 + b"\r") == ("lines", 4)
    assert sniff(b"nothing here") is None


@pytest.mark.parametrize(("first", "second"), [("lines-crlf", "rte"), ("rte", "stx-plain")])
def test_a_contradicting_framing_is_found_when_it_comes_a_byte_at_a_time(first, second):
    f = AutoFramer()
    got = f.feed(ENCODERS[first](DOCS["TD3"]), 0.0)
    data = junk_for(second) + ENCODERS[second](DOCS["TD1"])
    for i in range(len(data)):
        got += f.feed(data[i : i + 1], 0.01 * i)  # 10 ms apart: no idle timeout of 0.5 s
    assert [d.lines for d in got] == [tuple(DOCS["TD3"]), tuple(DOCS["TD1"])]
    assert f.framing == framing_of(second) and f.switches == 1


def test_trials_under_junk_cost_linear_time(monkeypatch):
    """A stream that contradicts the framing has every other framing tried on it; the
    trials must read each byte a bounded number of times, not replay the whole window at
    each line end (they did: 208 times per byte here)."""
    fed = {"bytes": 0}

    def counting(cls):
        class Counting(cls):
            def feed(self, data, now):
                fed["bytes"] += len(data)
                return super().feed(data, now)

        return Counting

    for name, cls in list(auto.CANDIDATES.items()):
        monkeypatch.setitem(auto.CANDIDATES, name, counting(cls))
    f = AutoFramer()
    assert len(f.feed(ENCODERS["rte"](DOCS["TD3"]), 0.0)) == 1
    fed["bytes"] = 0
    junk = bytes((7 * i) % 251 for i in range(160)) + b"\r\n"  # line ends, no frame
    n = 0
    for i in range(400):  # 65 kB in 16-byte reads
        for j in range(0, len(junk), 16):
            chunk = junk[j : j + 16]
            n += len(chunk)
            assert f.feed(chunk, float(i)) == []
    assert f.framing == "rte" and f.switches == 0
    # the inner framer reads each byte once, three trials once each, and every 1 kB the
    # trials are remade from the window (1 kB each): about 7 reads per byte in all
    assert fed["bytes"] < 8 * n, fed["bytes"] / n  # 6.9 measured
