"""Fixtures for the SLTD tests: small generated stores, an index key, and a real
throwaway PostgreSQL cluster with a fresh database per test."""

from __future__ import annotations

import itertools

import pytest

from firmware.errors import SetupError
from host_tools.sltd import pgcluster
from host_tools.sltd.samples import generate_store
from tests.support.require import need


@pytest.fixture
def index_key() -> bytes:
    return bytes(range(32))


@pytest.fixture
def small_db(tmp_path):
    """A generated store of 5,000 records (seed 11)."""
    path = tmp_path / "sltd.sqlite"
    generate_store(path, records=5_000, seed=11, progress=False)
    return path


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """A real throwaway PostgreSQL cluster on 127.0.0.1 (host_tools/sltd/pgcluster.py)."""
    try:
        pgcluster.pg_bindir()
    except SetupError as exc:
        need("pg", str(exc))
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError as exc:
        need("pg", f"psycopg is not installed ({exc}): pip install 'fieldterm[postgres]'")
    with pgcluster.PgCluster(tmp_path_factory.mktemp("pg")) as pg:
        yield pg


@pytest.fixture
def new_pg_database(pg_cluster):
    """Makes a new, empty database on the throwaway cluster and returns its URL."""
    import psycopg  # noqa: PLC0415

    def make() -> str:
        name = f"sltd_{next(_databases)}"
        with psycopg.connect(pg_cluster.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return f"{pg_cluster.url.rsplit('/', 1)[0]}/{name}"

    return make


@pytest.fixture
def pg_url(new_pg_database) -> str:
    """The URL of a new, empty database on the throwaway cluster: one per test."""
    return new_pg_database()


_databases = itertools.count(1)
