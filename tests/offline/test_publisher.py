"""Full list or delta: the regional's publishing policy, with an injected clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host_tools.offline.builder import write_list_dir
from host_tools.offline.publisher import ListPublisher, PublishPolicy

from .conftest import ListMaker, install


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_first_full_then_deltas_then_full_when_large_or_old(
    maker: ListMaker, tmp_path: Path
) -> None:
    clock = Clock()
    pub = ListPublisher(
        region=maker.region, sign_key=maker.sign_key, key_id=maker.key_id,
        policy=PublishPolicy(max_delta_fraction=0.05, rebuild_after=86400.0), clock=clock,
    )  # fmt: skip
    keys = maker.keys(10_000, 1)
    first = pub.update(3, keys)
    assert first is not None and first.full is not None and first.delta is None
    assert pub.update(3, keys) is None  # nothing new

    clock.t += 900
    k4 = keys[100:]  # 100 removals: a delta
    p4 = pub.update(4, k4)
    assert p4 is not None and p4.full is None and p4.delta is not None
    base_v = first.full.manifest.version
    assert base_v == 1_800_000_000  # the list's own version: its build time, not the store's 3
    assert p4.delta.manifest.base_version == base_v and p4.delta.manifest.filter["removed"] == 100
    assert p4.delta.manifest.version == base_v + 900

    # a kiosk that applies it no longer hits the removed records
    store = maker.store(tmp_path / "kiosk")
    install(store, first.full)
    install(store, p4.delta)
    with store.current() as lst:
        assert not any(lst.listed_hash(int(h)) for h in keys[:100])
        assert all(lst.listed_hash(int(h)) for h in k4)

    clock.t += 900
    p5 = pub.update(5, keys[600:])  # 600 changes against the base > 5 % of 10 000
    assert p5 is not None and p5.full is not None
    assert p5.full.manifest.version == clock.t > p4.delta.manifest.version

    clock.t += 900
    p6 = pub.update(6, keys[601:])
    assert p6 is not None and p6.delta is not None
    assert p6.delta.manifest.base_version == p5.full.manifest.version

    clock.t += 86400  # a day after the last full list: rebuild even for one change
    p7 = pub.update(7, keys[602:])
    assert p7 is not None and p7.full is not None
    write_list_dir(tmp_path / "out", p7.full)
    assert (tmp_path / "out" / "manifest.json").exists()


def test_delta_of_10000_changes_is_80_kb(maker: ListMaker) -> None:
    pub = ListPublisher(region=maker.region, sign_key=maker.sign_key, key_id=maker.key_id)
    base = maker.keys(1_000_000, 2)
    assert pub.update(1, base) is not None
    new = np.union1d(base[5000:], maker.keys(5000, 3))
    p = pub.update(2, new)
    assert p is not None and p.delta is not None
    changes = p.delta.manifest.filter["added"] + p.delta.manifest.filter["removed"]
    assert changes == 10_000
    assert len(p.delta.payload) == 64 + 8 * 10_000


def test_a_quiet_store_still_gets_fresh_lists_and_versions_only_grow(maker: ListMaker) -> None:
    """With no change in the store a kiosk must still see a new list every interval (its
    age is what it shows offline), and a clock that steps back never reuses a version."""
    clock = Clock()
    pub = ListPublisher(
        region=maker.region, sign_key=maker.sign_key, key_id=maker.key_id,
        policy=PublishPolicy(refresh_after=900.0), clock=clock,
    )  # fmt: skip
    keys = maker.keys(2000, 4)
    first = pub.update(7, keys)
    assert first is not None and first.full is not None
    clock.t += 899
    assert pub.update(7, keys) is None  # the same store, sooner than the interval
    clock.t += 1
    empty = pub.update(7, keys)  # same store version, interval passed: an empty delta
    assert empty is not None and empty.delta is not None
    m = empty.delta.manifest
    assert (m.filter["added"], m.filter["removed"]) == (0, 0) and m.created == clock.t
    clock.t -= 3600  # the clock steps back an hour
    later = pub.update(8, keys[1:])
    assert later is not None and later.delta is not None
    assert later.delta.manifest.version == m.version + 1  # still newer than the last
