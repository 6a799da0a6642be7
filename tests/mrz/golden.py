"""Shared data for the MRZ tests: the ICAO specimens as golden vectors."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def load_specimens() -> list[dict]:
    return json.loads((DATA / "specimens.json").read_text())["specimens"]


def load_names() -> list[dict]:
    return json.loads((DATA / "names.json").read_text())["names"]
