"""The kiosk's store: refusals keep the old list; a power cut leaves old or new, never a mix."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization

from firmware.offline import listdir
from firmware.offline.errors import (
    ListBaseError,
    ListChunkError,
    ListIncompleteError,
    ListKeyError,
    ListRegionError,
    ListRollbackError,
    ListSignatureError,
    OfflineListError,
)

from .conftest import ListMaker, install

REPO = Path(__file__).resolve().parents[2]


def test_install_then_refusals_keep_the_installed_list(maker: ListMaker, tmp_path: Path) -> None:
    store = maker.store(tmp_path / "offline")
    store.recover()
    with pytest.raises(ListIncompleteError):
        store.current()
    v5 = maker.full(maker.keys(4000, 1), 5, chunk_size=1024)
    install(store, v5)
    assert store.held_version() == 5

    older = maker.full(maker.keys(4000, 2), 4, chunk_size=1024)
    with pytest.raises(ListRollbackError) as ei:
        store.begin(older.manifest_bytes)
    assert ei.value.reason == "rollback"
    with pytest.raises(ListRollbackError):
        store.begin(v5.manifest_bytes)  # the same version again is not newer either

    foreign = ListMaker(region="north", list_key=maker.list_key).full(maker.keys(10, 3), 9)
    with pytest.raises(ListSignatureError):
        store.begin(foreign.manifest_bytes)
    north = ListMaker(region="north", sign_key=maker.sign_key, list_key=maker.list_key)
    with pytest.raises(ListRegionError):
        store.begin(north.full(maker.keys(10, 3), 9).manifest_bytes)
    other_key = ListMaker(sign_key=maker.sign_key)
    with pytest.raises(ListKeyError):
        store.begin(other_key.full(maker.keys(10, 3), 9).manifest_bytes)

    v6 = maker.full(maker.keys(4000, 4), 6, chunk_size=1024)
    dl = store.begin(v6.manifest_bytes)
    s, e = dl.manifest.chunk_span(0)
    bad = bytearray(v6.payload[s:e])
    bad[0] ^= 1
    with pytest.raises(ListChunkError):
        dl.put(0, bytes(bad))
    with pytest.raises(ListIncompleteError, match="chunks missing"):
        dl.install()
    with store.current() as lst:  # still the old list, whole
        assert lst.version == 5
    install(store, v6)
    assert store.held_version() == 6
    assert sorted(p.name for p in store.lists.iterdir()) == ["v6"]


def test_a_chunk_spoiled_on_disk_is_fetched_again(maker: ListMaker, tmp_path: Path) -> None:
    store = maker.store(tmp_path / "offline")
    built = maker.full(maker.keys(3000, 5), 2, chunk_size=512)
    dl = store.begin(built.manifest_bytes)
    for i in range(len(dl.manifest.chunks)):
        s, e = dl.manifest.chunk_span(i)
        dl.put(i, built.payload[s:e])
    (dl.chunks / "000003").write_bytes(b"junk")
    again = store.begin(built.manifest_bytes)  # as after a restart
    assert again.missing() == [3]


def test_delta_install_applies_on_its_base_only(maker: ListMaker, tmp_path: Path) -> None:
    store = maker.store(tmp_path / "offline")
    base = maker.keys(5000, 6)
    new = base[1:]
    install(store, maker.full(base, 10, chunk_size=1024))
    with pytest.raises(ListBaseError):
        store.begin(maker.delta(base, new, 9, 11).manifest_bytes)
    install(store, maker.delta(base, new, 10, 11))
    with store.current() as lst:
        assert lst.version == 11 and lst.full.version == 10
        assert not lst.listed_hash(int(base[0]))
        assert lst.listed_hash(int(base[1]))
    assert store.current_name() == "v10-d11"
    install(store, maker.delta(base, base[2:], 10, 12))
    with store.current() as lst:
        assert lst.version == 12 and not lst.listed_hash(int(base[1]))


def _writer(root: Path, files: dict[str, Path], region: str, kid: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.offline.store_writer", str(root),
         str(files["manifest"]), str(files["payload"]), str(files["pub"]), region, kid],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigkill_at_random_points_leaves_the_old_or_the_new_list(
    maker: ListMaker, tmp_path: Path
) -> None:
    pristine = tmp_path / "pristine"
    store = maker.store(pristine)
    old = maker.full(maker.keys(3000, 7), 1, chunk_size=256)
    install(store, old)
    new = maker.full(maker.keys(12_000, 8), 2, chunk_size=256)  # about 55 chunks
    files = {
        "manifest": tmp_path / "m.json",
        "payload": tmp_path / "p.bin",
        "pub": tmp_path / "pub",
    }
    files["manifest"].write_bytes(new.manifest_bytes)
    files["payload"].write_bytes(new.payload)
    files["pub"].write_bytes(
        maker.sign_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    n_chunks = len(new.manifest.chunks)
    steps = n_chunks + 2  # "missing", every chunk, "install"
    rng = random.Random(12)
    seen: dict[int, int] = {1: 0, 2: 0}
    resumed_with_fewer = 0
    for it in range(24):
        root = tmp_path / f"run{it}"
        shutil.copytree(pristine, root)
        kill_after = rng.choice([steps, steps, rng.randrange(1, steps + 1)])
        jitter = rng.uniform(0, 0.03 if kill_after == steps else 0.003)
        w = _writer(root, files, maker.region, maker.key_id.hex())
        assert w.stdout is not None
        for _ in range(kill_after):
            if not w.stdout.readline():
                break
        time.sleep(jitter)  # the kill point: somewhere after that step, at random
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=30)
        w.stdout.close()
        assert w.stderr is not None
        err = w.stderr.read()
        w.stderr.close()
        assert "Traceback" not in err, err

        # what a kiosk finds after the power cut: a whole list, old or new
        after = maker.store(root)
        with after.current() as lst:
            assert lst.version in (1, 2)
            seen[lst.version] += 1
            assert (lst.directory / listdir.FILTER).stat().st_size == (
                old if lst.version == 1 else new
            ).manifest.size
        # a restart resumes and installs the new list
        if lst.version == 1:
            w2 = _writer(root, files, maker.region, maker.key_id.hex())
            out, err = w2.communicate(timeout=60)
            assert w2.returncode == 0, err
            missing = int(out.splitlines()[0].split()[1])
            assert missing <= n_chunks
            resumed_with_fewer += missing < n_chunks
            with maker.store(root).current() as lst2:
                assert lst2.version == 2
        shutil.rmtree(root)
    assert seen[1] > 0 and seen[2] > 0, seen
    assert resumed_with_fewer > 0


def test_unreadable_current_list_is_a_refusal_not_a_crash(maker: ListMaker, tmp_path: Path) -> None:
    store = maker.store(tmp_path / "offline")
    install(store, maker.full(np.arange(1, 100, dtype=np.uint64), 3))
    (store.lists / "v3" / listdir.FILTER).write_bytes(b"short")
    with pytest.raises(OfflineListError):
        store.current()


def test_a_broken_installed_manifest_does_not_block_a_new_list(
    maker: ListMaker, tmp_path: Path
) -> None:
    store = maker.store(tmp_path / "offline")
    install(store, maker.full(maker.keys(500, 1), 3))
    (store.lists / "v3" / listdir.MANIFEST).write_bytes(b"{}")
    assert store.held_version() == 0
    install(store, maker.full(maker.keys(500, 2), 4))
    with store.current() as lst:
        assert lst.version == 4
