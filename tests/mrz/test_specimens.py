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
