import numpy as np
import pytest

from firmware.errors import SetupError
from host_tools.sltd import index as ix


def _write(tmp_path, arr, name="t.idx"):
    return ix.HashIndex(
        ix.write_index(
            tmp_path / name, arr, list_version=7, store_id="ab" * 16, index_key_id=b"k" * 8
        )
    )


@pytest.mark.parametrize("n", [0, 1, 2, 17, 5000])
def test_contains_exactly_the_written_hashes(tmp_path, n):
    r = np.random.default_rng(n)
    keys = ix.sort_unique(r.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True))
    if n >= 2:  # the extremes of the range land in the first and last bucket
        keys = ix.sort_unique(np.concatenate([keys, np.array([0, 2**64 - 1], np.uint64)]))
    idx = _write(tmp_path, keys)
    assert len(idx) == keys.size
    assert idx.header.list_version == 7 and idx.header.store_id == "ab" * 16
    assert all(idx.contains(int(k)) for k in keys)
    probes = r.integers(0, 2**64 - 1, 2000, dtype=np.uint64, endpoint=True)
    members = set(keys.tolist())
    for p in probes.tolist():
        assert idx.contains(p) == (p in members)
    assert idx.nbytes / max(keys.size, 1) <= 9 or keys.size < 1000


def test_merge_adds_and_removes(tmp_path):
    base = np.array([10, 20, 30, 40], np.uint64)
    out = ix.merge(base, [25, 20, 5], [30, 99])
    assert out.tolist() == [5, 10, 20, 25, 40]


def test_truncated_or_foreign_file_is_refused(tmp_path):
    idx = _write(tmp_path, np.arange(100, dtype=np.uint64))
    data = idx.path.read_bytes()
    (tmp_path / "cut.idx").write_bytes(data[:-4])
    with pytest.raises(SetupError, match="truncated"):
        ix.HashIndex(tmp_path / "cut.idx")
    (tmp_path / "junk.idx").write_bytes(b"x" * 200)
    with pytest.raises(SetupError, match="not an SLTD index"):
        ix.HashIndex(tmp_path / "junk.idx")


def test_index_path_names_the_key_not_reveals_it(tmp_path):
    key = bytes(32)
    p = ix.index_path("/srv/sltd.sqlite", key)
    assert p.name.startswith("sltd.sqlite.idx-")
    assert key.hex() not in str(p)
    assert ix.index_path("/srv/sltd.sqlite", b"\1" * 32) != p
