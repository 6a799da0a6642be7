import json
from collections import Counter

import pytest

from firmware import mrz
from firmware.errors import SetupError
from host_tools.sltd.generate import STATES, GeneratorSpec, ListGenerator
from host_tools.sltd.samples import generate_store
from host_tools.sltd.store import open_store


def test_same_seed_same_list_other_seed_other_list():
    a = ListGenerator(GeneratorSpec(3000, seed=5)).chunk(0)
    b = ListGenerator(GeneratorSpec(3000, seed=5)).chunk(0)
    c = ListGenerator(GeneratorSpec(3000, seed=6)).chunk(0)
    assert a == b
    assert a != c


def test_spread_and_unique_keys():
    rows = [r for ch in ListGenerator(GeneratorSpec(250_000, seed=1)).rows() for r in ch]
    keys = {(r[0], r[1], r[2]) for r in rows}
    assert len(keys) == len(rows)
    states = Counter(r[0] for r in rows)
    assert len(STATES) == 174 and len(states) >= 165
    top10 = sum(n for _, n in states.most_common(10))
    assert 0.35 < top10 / len(rows) < 0.7  # a few big reporters dominate
    cats = Counter(r[1] for r in rows)
    assert 0.6 < cats["P"] / len(rows) < 0.72 and 0.23 < cats["I"] / len(rows) < 0.33
    assert set(cats) == {"P", "I", "A", "C", "V"}
    statuses = Counter(r[3] for r in rows)
    assert set(statuses) == {"LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALIDATED"}
    assert statuses.most_common(1)[0][0] == "LOST"
    assert all(r[6] is None or r[6] <= r[5] for r in rows[:5000])


def test_generated_store_and_samples(tmp_path):
    db = tmp_path / "s.sqlite"
    listed, unlisted = tmp_path / "listed.jsonl", tmp_path / "unlisted.jsonl"
    summary = generate_store(
        db,
        records=20_000,
        seed=3,
        listed_sample=listed,
        unlisted_sample=unlisted,
        sample_size=25,
        progress=False,
    )
    assert summary["records"] == 20_000 and summary["records_per_second"] > 0
    with open_store(db) as st:
        assert st.count() == 20_000
        for path, must_hit in ((listed, True), (unlisted, False)):
            lines = path.read_text().splitlines()
            assert len(lines) == 25
            for line in lines:
                doc = json.loads(line)
                assert isinstance(doc, list) and all(isinstance(x, str) for x in doc)
                res = mrz.parse(doc)
                assert res.valid, res.errors
                j = res.to_json()
                assert len(doc) == (2 if j["doc_type"] == "TD3" else 3)
                state = j["issuing_state"].replace("<", "")
                cat = doc[0][0]
                got = st.get(state, cat, j["document_number"])
                assert (got is not None) == must_hit


def test_existing_output_needs_force(tmp_path):
    db = tmp_path / "s.sqlite"
    generate_store(db, records=10, seed=1, progress=False)
    with pytest.raises(SetupError, match="exists"):
        generate_store(db, records=10, seed=1, progress=False)
    generate_store(db, records=20, seed=1, progress=False, force=True)
    with open_store(db) as st:
        assert st.count() == 20
