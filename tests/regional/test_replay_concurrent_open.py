"""K regional processes started at once on a new replay store all open it (issue 15: one
of two died with "database is locked" on ``PRAGMA journal_mode=WAL``, seen once in a
LocalRegion with two regionals; six processes here did not reproduce it, so the retry
itself is tested with a database that is locked twice)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from host_tools.regional import replay
from host_tools.regional.replay import ReplayStore


def _open(path: str, barrier, out) -> None:
    barrier.wait()
    try:
        store = ReplayStore(Path(path), 120.0)
        out.put(("ok", store.first_use(b"n" * 16, 1000.0)))
    except Exception as exc:  # reported to the parent, not swallowed
        out.put(("error", repr(exc)))


def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path):
    ctx = mp.get_context("fork")
    k = 6
    barrier, out = ctx.Barrier(k), ctx.Queue()
    path = str(tmp_path / "replay.sqlite")
    procs = [ctx.Process(target=_open, args=(path, barrier, out)) for _ in range(k)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [g[0] for g in got] == ["ok"] * k, got
    assert sorted(g[1] for g in got) == [False] * (k - 1) + [True]  # one store, shared


def test_wal_mode_gives_up_on_other_errors(tmp_path):
    class Db:
        calls = 0

        def execute(self, _sql):
            Db.calls += 1
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        replay._wal_mode(Db())  # type: ignore[arg-type]
    assert Db.calls == 1


def test_wal_mode_retries_while_the_file_is_locked():
    class Db:
        calls = 0

        def execute(self, _sql):
            Db.calls += 1
            if Db.calls <= 2:
                raise sqlite3.OperationalError("database is locked")

    replay._wal_mode(Db())  # type: ignore[arg-type]
    assert Db.calls == 3
