"""Golden vectors: every ICAO 9303 specimen parses to its expected CLI object in all modes."""

from __future__ import annotations

import pytest

from firmware.mrz import JSON_KEYS, parse
from tests.mrz.golden import load_specimens

SPECIMENS = load_specimens()


def test_there_is_a_specimen_of_every_type():
    assert {s["expected"]["doc_type"] for s in SPECIMENS} == {"TD1", "TD2", "TD3", "MRVA", "MRVB"}


@pytest.mark.parametrize("spec", SPECIMENS, ids=[s["id"] for s in SPECIMENS])
@pytest.mark.parametrize("mode", ["strict", "tolerant", "repair"])
def test_specimen_parses_exactly(spec, mode):
    result = parse(spec["lines"], mode)
    expected = dict(spec["expected"])
    if mode == "repair":
        expected["repaired"] = []
    assert result.to_json() == expected
    assert list(result.to_json())[: len(JSON_KEYS)] == list(JSON_KEYS)
    assert result.valid and result.errors == ()
    assert result.normalised == ()


@pytest.mark.parametrize("spec", SPECIMENS, ids=[s["id"] for s in SPECIMENS])
def test_specimen_in_messy_transport_is_read_by_tolerant_and_repair(spec):
    messy = [
        " " + spec["lines"][0].lower() + "\r\n",
        *spec["lines"][1:-1],
        spec["lines"][-1] + " \n",
        "  ",
    ]
    assert not parse(messy).valid
    for mode in ("tolerant", "repair"):
        result = parse(messy, mode)
        assert result.valid, result
        assert result.document_number == spec["expected"]["document_number"]
        assert set(result.normalised) == {"line_breaks", "whitespace", "lowercase", "blank_lines"}


@pytest.mark.parametrize("spec", SPECIMENS, ids=[s["id"] for s in SPECIMENS])
def test_specimen_helpers_for_the_document_key(spec):
    result = parse(spec["lines"])
    assert result.category == spec["expected"]["document_code"][0]
    assert result.issuing_state == spec["expected"]["issuing_state"]
    assert result.document_number == spec["expected"]["document_number"]


# A joined MRZ: every line of a document in one, as keyboard-wedge readers send it. Lengths by
# ICAO 9303 (Parts 4-7): TD3 and MRV-A 2 x 44, TD2 and MRV-B 2 x 36, TD1 3 x 30.
JOINED_LENGTH = {"TD3": 88, "MRVA": 88, "TD2": 72, "MRVB": 72, "TD1": 90}


@pytest.mark.parametrize("spec", SPECIMENS, ids=[s["id"] for s in SPECIMENS])
@pytest.mark.parametrize("mode", ["tolerant", "repair"])
def test_joined_specimen_is_split_and_reported(spec, mode):
    joined = "".join(spec["lines"])
    assert len(joined) == JOINED_LENGTH[spec["expected"]["doc_type"]]
    result = parse([joined], mode)
    expected = dict(spec["expected"])
    if mode == "repair":
        expected["repaired"] = []
    assert result.to_json() == expected  # the layout after the split decides: MRV-B stays MRV-B
    assert result.normalised == ("joined_line",)


@pytest.mark.parametrize("spec", SPECIMENS, ids=[s["id"] for s in SPECIMENS])
def test_strict_refuses_a_joined_specimen_naming_the_line_and_its_length(spec):
    joined = "".join(spec["lines"])
    result = parse([joined])
    assert not result.valid and result.error_codes == ["structure:lines"]
    (error,) = result.errors
    assert error.position == (0, len(joined))
    assert f"got 1 line of {len(joined)} characters" in str(error)
    assert "tolerant mode splits it" in str(error)
    assert "line 1" in str(error)


def test_joined_line_in_messy_transport_reports_every_normalisation():
    spec = next(s for s in SPECIMENS if s["expected"]["doc_type"] == "TD1")
    result = parse([" " + "".join(spec["lines"]).lower() + "\r\n"], "tolerant")
    assert result.valid
    assert result.document_number == spec["expected"]["document_number"]
    assert result.normalised == ("line_breaks", "whitespace", "lowercase", "joined_line")


@pytest.mark.parametrize("length", [87, 89, 44, 100])
def test_other_single_line_lengths_are_not_split(length):
    line = ("P<UTO" + "<" * 100)[:length]
    result = parse([line], "tolerant")
    assert not result.valid and result.error_codes == ["structure:lines"]
    assert "joined_line" not in result.normalised
    assert f"1 line of {length} characters" in str(result.errors[0])
