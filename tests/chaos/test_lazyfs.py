"""The power-cut file system keeps exactly what was synced, through the kernel's FUSE driver.

Expected contents come from what each test wrote and synced, never from the model's own
state: after the cut the test reads the backing directory (what a rebooted card holds)
and, remounted, the mount itself.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.chaos.lazyfs import LazyFS, mounted
from tests.support.require import need


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[LazyFS]:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        need("root", "lazyfs mounts a FUSE file system: root and /dev/fuse")
    backing = tmp_path / "disk"
    backing.mkdir()
    (backing / "old.txt").write_bytes(b"old\n")
    (backing / "sub").mkdir()
    (backing / "sub" / "kept").write_bytes(b"kept")
    lazy = LazyFS(backing, tmp_path / "mnt").mount()
    yield lazy
    lazy.unmount()
    assert not mounted(lazy.mountpoint)


def test_what_was_there_at_mount_is_seen_and_survives(fs: LazyFS) -> None:
    m = fs.mountpoint
    assert sorted(os.listdir(m)) == ["old.txt", "sub"]
    assert (m / "old.txt").read_bytes() == b"old\n" and (m / "sub" / "kept").read_bytes() == b"kept"
    fs.cut()
    assert (fs.backing / "old.txt").read_bytes() == b"old\n"
    assert (fs.backing / "sub" / "kept").read_bytes() == b"kept"


def test_synced_data_survives_a_cut_and_unsynced_data_is_dropped(fs: LazyFS) -> None:
    m = fs.mountpoint
    _write(m / "synced", b"A" * 10_000, sync=True)
    _write(m / "unsynced", b"B" * 100, sync=False)
    _fsync(m)  # both names durable; only one file's data
    with open(m / "old.txt", "ab") as fh:  # an append never synced
        fh.write(b"lost line\n")
    with open(m / "synced", "r+b") as fh:  # an overwrite after the sync, never synced
        fh.write(b"Z" * 10)
    assert (m / "old.txt").read_bytes() == b"old\nlost line\n"  # seen before the cut
    fs.cut()
    assert (fs.backing / "synced").read_bytes() == b"A" * 10_000
    assert (fs.backing / "unsynced").read_bytes() == b""  # its name survived, not its data
    assert (fs.backing / "old.txt").read_bytes() == b"old\n"


def test_a_new_file_without_a_directory_fsync_is_gone(fs: LazyFS) -> None:
    m = fs.mountpoint
    _write(m / "sub" / "new", b"data", sync=True)  # file fsynced, its directory not
    _fsync(m)  # the parent of sub: not sub itself
    fs.cut()
    assert sorted(os.listdir(fs.backing / "sub")) == ["kept"]


def test_rename_is_durable_only_after_the_directory_fsync(fs: LazyFS) -> None:
    m = fs.mountpoint
    _write(m / "tmp1", b"new one", sync=True)
    os.replace(m / "tmp1", m / "old.txt")  # no directory fsync
    _write(m / "tmp2", b"new two", sync=True)
    os.replace(m / "tmp2", m / "sub" / "kept")
    _fsync(m / "sub")  # this rename is made durable
    assert (m / "old.txt").read_bytes() == b"new one"
    fs.cut()
    assert (fs.backing / "old.txt").read_bytes() == b"old\n"  # the rename was lost
    assert not (fs.backing / "tmp1").exists()
    assert (fs.backing / "sub" / "kept").read_bytes() == b"new two"


def test_remounted_after_a_cut_a_sqlite_wal_database_keeps_its_synced_commits(
    fs: LazyFS,
) -> None:
    m = fs.mountpoint
    db = sqlite3.connect(m / "x.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
    db.commit()
    db.execute("PRAGMA synchronous=OFF")  # from here on, commits are not fsynced
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50, 80)])
    db.commit()
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 80
    assert fs.command("cut").startswith("cut ")  # the power goes: nothing more is written
    db.close()  # its descriptors hold the mount until closed (the operations fail now)
    fs.unmount()
    again = LazyFS(fs.backing, fs.mountpoint).mount()
    try:
        db2 = sqlite3.connect(again.mountpoint / "x.sqlite")
        assert db2.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db2.execute("SELECT count(*), max(n) FROM t").fetchone() == (50, 49)
        db2.close()
    finally:
        again.sync_unmount()


def test_a_hard_link_shares_the_files_durable_data(fs: LazyFS) -> None:
    m = fs.mountpoint
    os.link(m / "sub" / "kept", m / "also")  # as a delta list shares the full list's files
    _fsync(m)
    with open(m / "also", "ab") as fh:
        fh.write(b" and more")
        fh.flush()
        os.fsync(fh.fileno())
    fs.cut()  # (the image writes each name as its own file: links are not kept)
    assert (fs.backing / "also").read_bytes() == b"kept and more"
    assert (fs.backing / "sub" / "kept").read_bytes() == b"kept and more"


def test_an_fsync_through_a_write_only_append_descriptor_is_kept(fs: LazyFS) -> None:
    m = fs.mountpoint
    fd = os.open(m / "old.txt", os.O_WRONLY | os.O_APPEND)  # as the agent's audit log
    try:
        os.write(fd, b"line 2\n")
        os.fsync(fd)
        os.write(fd, b"line 3, never synced\n")
    finally:
        os.close(fd)
    fs.cut()
    assert (fs.backing / "old.txt").read_bytes() == b"old\nline 2\n"
