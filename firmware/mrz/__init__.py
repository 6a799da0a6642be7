"""ICAO Doc 9303 MRZ engine: parse, validate, repair and build machine readable zones.

Written once and shared by the kiosk firmware and the host tools. The public API:

- :func:`parse` -- lines of one document to a frozen :class:`MrzResult` (never raises for
  bad MRZ content; defects are in ``result.errors``);
- :func:`compute_check_digit` -- the 7-3-1 check digit of a string;
- :func:`build` and ``make_td1/td2/td3/mrva/mrvb`` -- valid MRZ lines from fields, for
  simulators, synthetic data and tests.
"""

from __future__ import annotations

from firmware.mrz.build import build, make_mrva, make_mrvb, make_td1, make_td2, make_td3
from firmware.mrz.checkdigit import compute_check_digit
from firmware.mrz.engine import parse
from firmware.mrz.layouts import DOC_TYPES, MRVA, MRVB, TD1, TD2, TD3
from firmware.mrz.result import JSON_KEYS, MODES, REPAIR, STRICT, TOLERANT, MrzResult

__all__ = [
    "DOC_TYPES",
    "JSON_KEYS",
    "MODES",
    "MRVA",
    "MRVB",
    "REPAIR",
    "STRICT",
    "TD1",
    "TD2",
    "TD3",
    "TOLERANT",
    "MrzResult",
    "build",
    "compute_check_digit",
    "make_mrva",
    "make_mrvb",
    "make_td1",
    "make_td2",
    "make_td3",
    "parse",
]
