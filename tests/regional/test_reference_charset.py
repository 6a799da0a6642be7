"""SLTD references are limited to characters JSON never escapes (issue 13 part 6), so a
hit's response keeps the padded size of a miss whatever the reference; a bad reference is
refused with the field and the position named (never the value)."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from firmware.protocol.messages import Response, encode_response_body
from host_tools.regional.service import record_details
from host_tools.sltd.importer import SltdImportError, parse_csv
from host_tools.sltd.records import REFERENCE_CHARS, REFERENCE_MAX, RecordError, SltdRecord, Status

HEADER = (
    "issuing_state,document_type,document_number,status,reporting_country,"
    "reported_on,event_date,reference\n"
)


def record(reference: str) -> SltdRecord:
    return SltdRecord(
        "UTO", "P", "X" * 22, Status.STOLEN_BLANK, "UTO", dt.date(2026, 12, 31), reference
    )


@pytest.mark.parametrize(
    ("reference", "position"),
    [('UTO/2024/"1', 10), ("UTO\\2024", 4), ("UTO/2024/é", 10), ("A\tB", 2), ("ok;drop", 3)],
)
def test_a_reference_outside_the_set_names_the_field_and_position(reference, position):
    with pytest.raises(RecordError) as e:
        record(reference)
    assert e.value.field == "reference"
    assert f"character {position} is not allowed" in str(e.value)
    assert reference not in str(e.value)  # no value echoed


def test_the_importer_names_line_column_field_and_position():
    text = HEADER + "UTO,P,L898902C3,STOLEN,UTO,2024-01-02,,UTO/2024/1\n"
    text += 'UTO,P,L898902C4,STOLEN,UTO,2024-01-02,,UTO/2024/"2\n'
    rows = parse_csv("list.csv", text)
    assert next(rows)[1].reference == "UTO/2024/1"
    with pytest.raises(SltdImportError) as e:
        next(rows)
    msg = str(e.value)
    assert "list.csv" in msg and "3" in msg and "reference" in msg and "character 10" in msg


def test_length_and_spaces_are_checked():
    for bad in ("", "A" * (REFERENCE_MAX + 1), " A", "A "):
        with pytest.raises(RecordError):
            record(bad)
    assert record("A" * REFERENCE_MAX).reference == "A" * REFERENCE_MAX


def test_the_worst_case_hit_response_has_the_size_of_a_miss():
    """Every allowed character, at the longest length, the longest status and the largest
    list version: still one padded block, like a miss."""
    chars = sorted(REFERENCE_CHARS - {" "})
    worst = "".join(chars[i % len(chars)] for i in range(REFERENCE_MAX))
    qid = os.urandom(16)
    hit = Response(qid, "POSSIBLE_MATCH", 2**53, record_details(record(worst)))
    miss = Response(qid, "NO_MATCH", 1)
    err = Response(qid, "ERROR", 2**53, reason="lookup failed")
    sizes = {len(encode_response_body(r)) for r in (hit, miss, err)}
    assert sizes == {256}
