import datetime as dt

import pytest

from host_tools.sltd.records import (
    RecordError,
    SltdRecord,
    Status,
    category_for,
    parse_status,
)

D = dt.date(2025, 3, 1)


def rec(**kw):
    base = dict(
        issuing_state="FRA",
        document_type="P",
        document_number="12AB34567",
        status=Status.STOLEN,
        reporting_country="FRA",
        reported_on=D,
        reference="FRA/2025/1",
    )
    base.update(kw)
    return SltdRecord(**base)


def test_valid_record_and_canonical_key():
    r = rec(event_date=dt.date(2025, 2, 27))
    assert r.key_tuple == ("FRA", "P", "12AB34567")
    assert r.canonical() == b"FRA|P|12AB34567"


@pytest.mark.parametrize(
    "field,value",
    [
        ("issuing_state", "FRAN"),
        ("issuing_state", "fr"),
        ("document_type", "X"),
        ("document_number", "12AB<4567"),
        ("document_number", "1" * 23),
        ("reporting_country", ""),
        ("reference", ""),
        ("reference", "x" * 65),
        ("event_date", dt.date(2025, 3, 2)),
    ],
)
def test_bad_field_is_named(field, value):
    with pytest.raises(RecordError) as ei:
        rec(**{field: value})
    assert ei.value.field == field
    # the message never echoes the value (it may be a document number)
    if isinstance(value, str) and len(value) > 2:
        assert value not in str(ei.value)


def test_status_from_text_is_normalised():
    assert rec(status="stolen blank").status is Status.STOLEN_BLANK
    assert parse_status("Invalidated") is Status.INVALIDATED
    with pytest.raises(RecordError):
        parse_status("MISSING")


def test_sltd_types_map_onto_mrz_categories():
    assert category_for("Passport") == "P"
    assert category_for("diplomatic passport") == "P"
    assert category_for("ID card") == "I"
    assert category_for("visa") == "V"
    assert category_for("C") == "C"
    with pytest.raises(RecordError) as ei:
        category_for("library card")
    assert ei.value.field == "document_type"
