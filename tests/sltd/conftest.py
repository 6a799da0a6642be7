"""Fixtures for the SLTD tests: small generated stores and an index key."""

from __future__ import annotations

import pytest

from host_tools.sltd.samples import generate_store


@pytest.fixture
def index_key() -> bytes:
    return bytes(range(32))


@pytest.fixture
def small_db(tmp_path):
    """A generated store of 5,000 records (seed 11)."""
    path = tmp_path / "sltd.sqlite"
    generate_store(path, records=5_000, seed=11, progress=False)
    return path
