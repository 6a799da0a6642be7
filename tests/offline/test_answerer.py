"""The offline answer rules: listed, not listed with the age, UNKNOWN without a usable list."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware.offline import listdir
from firmware.offline.answerer import LISTED, NOT_LISTED, UNKNOWN, OfflineAnswerer
from firmware.offline.listkey import list_hash
from firmware.protocol.dockey import DocumentKey

from .conftest import ListMaker, install

LISTED_DOCS = [DocumentKey("UTO", "P", f"L{i:07d}") for i in range(500)]
ABSENT = DocumentKey("UTO", "P", "NEVERLISTED1")


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _keys(maker: ListMaker, docs: list[DocumentKey]) -> np.ndarray:
    return np.unique(np.array([list_hash(maker.list_key, d) for d in docs], dtype=np.uint64))


def test_answers_follow_the_rules(tmp_path: Path) -> None:
    # a fixed key and 16-bit fingerprints: ABSENT is not a false positive (checked once,
    # and p = 2^-16 for any other key)
    maker = ListMaker(list_key=bytes(range(32)))
    store = maker.store(tmp_path / "offline")
    clock = Clock(1_000_000.0)
    with OfflineAnswerer(store, maker.list_key, max_age=3600.0, clock=clock) as ans:
        a = ans.answer(LISTED_DOCS[0])
        assert (a.verdict, a.reason) == (UNKNOWN, "none")
        assert ans.status() == {"list_version": None, "reason": "none"}

        install(store, maker.full(_keys(maker, LISTED_DOCS), 4, bits=16, created=clock.t - 60))
        ans.reload()
        assert all(ans.answer(d).verdict == LISTED for d in LISTED_DOCS)
        miss = ans.answer(ABSENT)
        assert (miss.verdict, miss.list_version, miss.list_age_s) == (NOT_LISTED, 4, 60.0)
        assert ans.status() == {
            "list_version": 4,
            "list_age_s": 60.0,
            "records": 500,
            "stale": False,
        }

        clock.t += 3600.0  # now 3660 s old: too old to answer
        old = ans.answer(LISTED_DOCS[0])
        assert (old.verdict, old.reason, old.list_version) == (UNKNOWN, "stale", 4)
        assert ans.status()["stale"] is True


def test_a_delta_removal_stops_the_hit(maker: ListMaker, tmp_path: Path) -> None:
    store = maker.store(tmp_path / "offline")
    base = _keys(maker, LISTED_DOCS)
    gone = list_hash(maker.list_key, LISTED_DOCS[7])
    install(store, maker.full(base, 10))
    install(store, maker.delta(base, base[base != np.uint64(gone)], 10, 11))
    with OfflineAnswerer(store, maker.list_key, max_age=3600.0) as ans:
        assert ans.answer(LISTED_DOCS[7]).verdict == NOT_LISTED
        assert ans.answer(LISTED_DOCS[8]).verdict == LISTED
        assert ans.answer(LISTED_DOCS[7]).list_version == 11


def test_a_list_spoiled_on_disk_gives_unknown_with_the_reason(
    maker: ListMaker, tmp_path: Path
) -> None:
    store = maker.store(tmp_path / "offline")
    install(store, maker.full(_keys(maker, LISTED_DOCS), 4))
    f = store.lists / "v4" / listdir.FILTER
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with OfflineAnswerer(store, maker.list_key, max_age=3600.0) as ans:
        a = ans.answer(LISTED_DOCS[0])
        assert (a.verdict, a.reason) == (UNKNOWN, "chunk")
