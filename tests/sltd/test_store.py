"""SQLite-specific behaviour of the SLTD store and the scheme table of ``open_store``.

What every backend must do is in test_store_contract.py, run on SQLite and PostgreSQL.
"""

import subprocess
import sys

import pytest

from firmware.errors import ConfigError, SetupError
from host_tools.sltd.records import Status
from host_tools.sltd.store import STORES, SqliteStore, open_store, store_scheme


def test_missing_store_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match="not found"):
        open_store(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # not created by the refusal
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SetupError, match="not a usable"):
        open_store(tmp_path / "junk.sqlite")


def test_sqlite_url_names_the_same_file_as_the_path(tmp_path):
    path = tmp_path / "s.sqlite"
    with open_store(path, create=True) as st:
        store_id = st.store_id
    with open_store(f"sqlite://{path}") as st:  # sqlite:///abs/path
        assert isinstance(st, SqliteStore) and st.store_id == store_id
        assert st.path == st.local_path == path  # an index may sit next to the file


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("sltd.sqlite", "sqlite"),
        ("/srv/sltd/sltd.sqlite", "sqlite"),
        ("sqlite:///srv/sltd.sqlite", "sqlite"),
        ("postgresql://u@db.example/sltd", "postgresql"),
        ("POSTGRES://u@db.example/sltd", "postgres"),
        ("mysql://u:secret@db/sltd", "mysql"),
    ],
)
def test_store_scheme(url, scheme):
    assert store_scheme(url) == scheme


def test_unknown_scheme_names_the_setting_and_the_known_schemes():
    with pytest.raises(ConfigError) as info:
        open_store("mysql://u:secret@db/sltd")
    assert info.value.field == "regional.sltd_db"
    message = str(info.value)
    assert "'mysql'" in message and "sqlite, postgresql, postgres" in message
    assert "secret" not in message  # never echo a URL's password
    with pytest.raises(ConfigError, match=r"^--db: unknown backend 'redis'"):
        open_store("redis://db/0", setting="--db")
    assert STORES.names == ("sqlite", "postgresql", "postgres")


def test_opening_a_sqlite_store_never_imports_psycopg(tmp_path):
    """The PostgreSQL backend (and its driver) loads only when a postgresql:// URL is opened."""
    code = (
        "import sys\n"
        "from host_tools.sltd.store import open_store\n"
        f"with open_store({str(tmp_path / 'p.sqlite')!r}, create=True) as st:\n"
        "    st.count()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('psycopg', 'host_tools.sltd.pg'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_stats_of_a_generated_store(small_db):
    with open_store(small_db) as st:
        s = st.stats(top=5)
    assert s["records"] == 5000
    assert sum(s["by_status"].values()) == 5000
    assert set(s["by_status"]) == {x.value for x in Status}
    assert set(s["by_document_type"]) <= {"P", "I", "A", "C", "V"}
    assert len(s["top_issuing_states"]) == 5
    assert s["store"] == str(small_db)
    wal = small_db.parent / f"{small_db.name}-wal"
    assert s["size_bytes"] >= small_db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
