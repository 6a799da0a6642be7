"""The pure framers: every framing, every split point, junk, bad frames, bounded memory."""

from __future__ import annotations

import random

import pytest

from firmware.errors import FramingError
from firmware.scanner import framing_rte, make_framer
from firmware.scanner.framing_lines import MAX_LINE
from firmware.scanner.framing_stx import MAX_FRAME as STX_MAX
from tests.scanner.helpers import DOCS, ENCODERS, framing_of, junk_for


def feed_all(framer, chunks, now=0.0):
    docs = []
    for chunk in chunks:
        docs += framer.feed(chunk, now)
    return docs


@pytest.mark.parametrize("style", sorted(ENCODERS))
@pytest.mark.parametrize("doc_type", sorted(DOCS))
def test_round_trip_every_type(style, doc_type):
    lines = DOCS[doc_type]
    f = make_framer(framing_of(style))
    docs = f.feed(ENCODERS[style](lines), 0.0)
    assert [(d.framing, d.lines) for d in docs] == [(framing_of(style), tuple(lines))]
    assert docs[0].mrz.valid and docs[0].mrz.to_json()["doc_type"] == doc_type
    assert f.counters() == {"junk_bytes": 0, "bad_frames": 0, "documents": 1}


@pytest.mark.parametrize("style", sorted(ENCODERS))
def test_split_at_every_byte_boundary(style):
    lines = DOCS["TD1"]
    data = ENCODERS[style](lines)
    for cut in range(1, len(data)):
        f = make_framer(framing_of(style))
        docs = feed_all(f, [data[:cut], data[cut:]])
        assert [d.lines for d in docs] == [tuple(lines)], f"cut at {cut}"
    f = make_framer(framing_of(style))
    docs = feed_all(f, [data[i : i + 1] for i in range(len(data))])
    assert [d.lines for d in docs] == [tuple(lines)]


@pytest.mark.parametrize("style", sorted(ENCODERS))
def test_back_to_back_and_junk_between(style):
    enc = ENCODERS[style]
    order = ["TD3", "TD1", "MRVB", "TD2", "MRVA"]
    data = junk_for(style)
    for name in order:
        data += enc(DOCS[name]) + enc(DOCS[name]) + junk_for(style)
    f = make_framer(framing_of(style))
    docs = f.feed(data, 0.0) + f.poll(100.0)
    assert [d.lines for d in docs] == [tuple(DOCS[n]) for n in order for _ in (1, 2)]
    assert f.junk_bytes > 0 and f.bad_frames == 0
    assert f.documents == 10


@pytest.mark.parametrize("style", sorted(ENCODERS))
def test_bad_check_digit_still_a_document(style):
    lines = list(DOCS["TD3"])
    lines[1] = lines[1][:9] + ("0" if lines[1][9] != "0" else "1") + lines[1][10:]
    f = make_framer(framing_of(style))
    docs = f.feed(ENCODERS[style](lines), 0.0)
    assert len(docs) == 1 and not docs[0].mrz.valid
    assert "check:document_number" in docs[0].mrz.to_json()["errors"]


def test_rte_bcc_mismatch_rejects_frame_and_next_frame_reads():
    good = framing_rte.encode(DOCS["TD3"])
    bad = bytearray(good)
    bad[-1] ^= 0x55
    f = make_framer("rte")
    docs = f.feed(bytes(bad) + good, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]
    assert f.bad_frames == 1
    (err,) = f.take_errors()
    assert isinstance(err, FramingError)
    assert "rte" in str(err) and "byte 0" in str(err) and "block check" in str(err)
    assert "ERIKSSON" not in str(err)


def test_rte_flipped_data_byte_is_rejected():
    good = framing_rte.encode(DOCS["TD1"])
    for pos in range(6, len(good) - 2):  # every byte of the optical data
        bad = bytearray(good)
        bad[pos] ^= 0x01
        f = make_framer("rte")
        assert f.feed(bytes(bad), 0.0) == [], pos
        assert f.bad_frames == 1


def test_rte_layout():
    data = framing_rte.encode(DOCS["TD3"], flag=0x31)
    assert data[0] == 0x01 and data[2:4] == b"OU" and data[4] == 0x02 and data[5] == 0x31
    assert data[1] == len(data) - 3  # O .. ETX
    assert data[-2] == 0x03 and data[-1] == framing_rte.bcc(data[1:-1])
    assert data[6:7] == b"\r"  # an absent first line is empty
    td1 = framing_rte.encode(DOCS["TD1"])
    assert b"<" * 5 + b"_" * 14 + b"\r" in td1  # 30-character lines padded with '_'


def test_rte_lost_byte_costs_one_frame():
    good = framing_rte.encode(DOCS["TD2"])
    cut = good[:40] + good[41:]  # a byte lost on the wire
    f = make_framer("rte")
    docs = f.feed(cut + good, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD2"])]
    assert f.bad_frames >= 1


def test_lines_overlong_line_is_bad_frame_and_recovers():
    f = make_framer("lines")
    data = b"A<" * 100 + b"\r\n" + ENCODERS["lines-crlf"](DOCS["TD3"])
    docs = f.feed(data, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]
    assert f.bad_frames == 1
    (err,) = f.take_errors()
    assert str(err) == f"lines: frame at byte 0: line longer than {MAX_LINE} bytes"


def test_stx_overlong_frame_is_bad_and_recovers():
    f = make_framer("stx")
    data = b"\x02" + b"X" * (STX_MAX + 10) + b"\x03" + ENCODERS["stx-plain"](DOCS["TD1"])
    docs = f.feed(data, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD1"])]
    assert f.bad_frames == 1
    assert "stx: frame at byte 0: frame longer than 1024 bytes" in str(f.take_errors()[0])


def test_stx_frame_cut_by_new_stx():
    whole = ENCODERS["stx-accessis"](DOCS["TD3"])
    f = make_framer("stx")
    docs = f.feed(whole[:30] + whole, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]
    assert f.bad_frames == 1
    assert "byte 1" in str(f.take_errors()[0])  # the STX after the FS byte


@pytest.mark.parametrize("framing", ["stx", "json", "rte"])
def test_frame_cut_short_by_idle_gap(framing):
    style = {"stx": "stx-plain", "json": "json", "rte": "rte"}[framing]
    data = ENCODERS[style](DOCS["TD3"])
    f = make_framer(framing, idle_timeout=0.5)
    assert f.feed(data[:20], 1.0) == []
    assert f.poll(1.4) == [] and f.bad_frames == 0
    assert f.poll(1.6) == [] and f.bad_frames == 1
    assert "cut short" in str(f.take_errors()[0])
    # The rest arriving later is junk (or a bad frame), the next whole frame reads.
    docs = f.feed(data[20:], 2.0) + f.feed(data, 2.1)
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]


def test_lines_idle_gap_ends_partial_document():
    lines = DOCS["TD1"]
    f = make_framer("lines", idle_timeout=0.5)
    assert f.feed(ENCODERS["lines-crlf"](lines[:2]), 10.0) == []
    assert f.poll(10.5) == []
    (doc,) = f.poll(10.51)
    assert doc.lines == tuple(lines[:2]) and not doc.mrz.valid
    # A gap inside feed() does the same: the old partial goes out, the new one starts.
    f.feed(ENCODERS["lines-crlf"](lines[:1]), 20.0)
    docs = f.feed(ENCODERS["lines-crlf"](DOCS["TD3"]), 21.0)
    assert [d.lines for d in docs] == [tuple(lines[:1]), tuple(DOCS["TD3"])]


def test_lines_last_line_without_terminator_ends_at_idle():
    lines = DOCS["TD3"]
    f = make_framer("lines", idle_timeout=0.5)
    assert f.feed((lines[0] + "\r" + lines[1]).encode(), 0.0) == []
    (doc,) = f.poll(1.0)
    assert doc.lines == tuple(lines) and doc.mrz.valid


def test_lines_misread_length_is_a_document_with_errors():
    lines = list(DOCS["TD3"])
    lines[1] = lines[1][:-1]  # the OCR dropped a character
    f = make_framer("lines")
    (doc,) = f.feed(ENCODERS["lines-crlf"](lines), 0.0)
    assert doc.lines == tuple(lines) and not doc.mrz.valid


def test_lines_type_change_ends_partial():
    f = make_framer("lines")
    data = ENCODERS["lines-crlf"](DOCS["TD1"][:1]) + ENCODERS["lines-crlf"](DOCS["TD3"])
    docs = f.feed(data, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["TD1"][:1]), tuple(DOCS["TD3"])]


def test_json_bad_bodies_are_bad_frames():
    f = make_framer("json")
    data = b'\x02{"data": 5}\x03\r\n\x02not json\x03\r\n\x02[1]\x03\r\n\x02\xff\xfe\x03\r\n'
    good = ENCODERS["json"](DOCS["MRVB"])
    docs = f.feed(data + good, 0.0)
    assert [d.lines for d in docs] == [tuple(DOCS["MRVB"])]
    assert f.bad_frames == 4
    msgs = [str(e) for e in f.take_errors()]
    assert all(m.startswith("json: frame at byte ") for m in msgs)


def test_json_ignores_other_fields_and_crlf_in_data():
    l1, l2 = DOCS["TD3"]
    body = '{"type": "ID", "data": "' + l1 + "\\r\\n" + l2 + '", "x": [1, 2]}'
    f = make_framer("json")
    (doc,) = f.feed(b"\x02" + body.encode() + b"\x03\r\n", 0.0)
    assert doc.lines == tuple(DOCS["TD3"]) and doc.mrz.valid


def test_non_mrz_message_is_junk_not_document():
    f = make_framer("stx")
    assert f.feed(b"\x02BARCODE 1234\r\x03", 0.0) == []
    assert f.junk_bytes > 0 and f.documents == 0 and f.bad_frames == 0


@pytest.mark.parametrize("framing", ["lines", "stx", "rte", "json", "auto"])
def test_memory_bound_under_junk(framing):
    rng = random.Random(1234)
    f = make_framer(framing)
    peak = 0
    total = 0
    for i in range(2000):
        kind = i % 4
        if kind == 0:  # random bytes
            chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
        elif kind == 1:  # endless line / frame openers without an end
            chunk = rng.choice([b"\x02", b"\x01\xffOU\x02", b""]) + b"A<" * rng.randint(1, 300)
        elif kind == 2:
            chunk = b"\x02{" + b'"' * rng.randint(1, 900)
        else:
            chunk = b"<" * rng.randint(1, 900)
        f.feed(chunk, i * 0.001)  # no idle gaps: nothing ends by timeout
        total += len(chunk)
        peak = max(peak, f.buffered)
        assert f.buffered <= f.max_buffer
    assert total > 500_000
    assert peak <= f.max_buffer
    # And the framer still reads a document afterwards.
    style = {"lines": "lines-crlf", "stx": "stx-plain", "auto": "stx-plain"}.get(framing, framing)
    docs = f.feed(b"\r\n\x03\r\n" + ENCODERS[style](DOCS["TD3"]) * 2, 10.0)
    assert tuple(DOCS["TD3"]) in [d.lines for d in docs]


def test_flush_ends_partial_at_disconnect():
    f = make_framer("lines")
    f.feed(ENCODERS["lines-crlf"](DOCS["TD3"][:1]), 0.0)
    (doc,) = f.flush()
    assert doc.lines == tuple(DOCS["TD3"][:1])
    g = make_framer("stx")
    g.feed(ENCODERS["stx-plain"](DOCS["TD3"])[:10], 0.0)
    assert g.flush() == [] and g.bad_frames == 1


def test_framing_error_keeps_bounded_list():
    f = make_framer("rte")
    good = bytearray(framing_rte.encode(DOCS["TD3"]))
    good[-1] ^= 1
    f.feed(bytes(good) * 40, 0.0)
    assert f.bad_frames == 40
    assert len(f.take_errors()) == 16 and f.take_errors() == []


def test_unknown_framing_name():
    with pytest.raises(ValueError, match="unknown framing 'xml'"):
        make_framer("xml")


@pytest.mark.parametrize("kind", ["TD1", "TD2", "TD3"])
def test_lines_joined_mrz_is_one_document_the_engine_splits(kind):
    """A keyboard-wedge reader sends the whole MRZ as one line (90, 72 or 88 characters):
    it goes out as a one-line document; tolerant mode splits it, strict refuses it."""
    from firmware.mrz import parse  # noqa: PLC0415

    joined = "".join(DOCS[kind])
    assert len(joined) == {"TD1": 90, "TD2": 72, "TD3": 88}[kind]
    f = make_framer("lines")
    docs = f.feed(joined.encode() + b"\r\n" + ENCODERS["lines-crlf"](DOCS["TD3"]), 0.0)
    assert [d.lines for d in docs] == [(joined,), tuple(DOCS["TD3"])]
    assert f.bad_frames == 0 and f.junk_bytes == 0
    assert parse(list(docs[0].lines), "tolerant").valid
    assert not parse(list(docs[0].lines), "strict").valid


@pytest.mark.parametrize("style", ["stx-plain", "stx-accessis", "json"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 10**6])
def test_repeated_stx_is_junk_then_the_frame_reads(style, chunk):
    # a reader stuck sending STX: the repeats start no frame, so no error per byte
    whole = ENCODERS[style](DOCS["TD3"])
    prefix = whole[: whole.index(b"\x02")]  # the vendor byte of the Access-IS style
    data = prefix + b"\x02" * 5000 + whole[len(prefix) :]
    f = make_framer(framing_of(style))
    docs = feed_all(f, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]
    assert f.counters() == {"junk_bytes": 5000, "bad_frames": 0, "documents": 1}


@pytest.mark.parametrize("chunk", [1, 5, 4096, 10**6])
def test_lines_runs_of_line_ends_are_skipped_and_offsets_stay_right(chunk):
    blanks = b"\r\n" * 3000 + b"\n" * 2000 + b"\r" * 1000 + b"\n\r" * 500
    overlong = b"A" * (MAX_LINE + 1) + b"\r\n"
    doc = ENCODERS["lines-crlf"](DOCS["TD3"])
    data = blanks + overlong + blanks + doc
    f = make_framer("lines")
    docs = feed_all(f, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [d.lines for d in docs] == [tuple(DOCS["TD3"])]
    assert f.counters() == {"junk_bytes": 0, "bad_frames": 1, "documents": 1}
    assert str(f.take_errors()[0]).startswith(f"lines: frame at byte {len(blanks)}: ")
