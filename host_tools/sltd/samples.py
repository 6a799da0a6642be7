"""``fieldterm sltd generate``: write a synthetic store, plus MRZ samples for tests and demos.

A sample file has one JSON array of MRZ lines per line (the input of ``fieldterm mrz
parse --jsonl`` and ``fieldterm query --mrz-jsonl``). Listed samples are documents from
the generated list (a query must answer POSSIBLE_MATCH); unlisted samples use numbers no
generator format can produce (a query must answer NO_MATCH). The MRZs are made by the
MRZ engine's own generators, so their check digits are right by construction. Names,
birth dates and expiry dates are synthetic filler: SLTD records hold no personal data.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from firmware.errors import SetupError
from host_tools.sltd.generate import GeneratorSpec, ListGenerator
from host_tools.sltd.store import Row, SqliteStore

_SURNAMES = (
    "ERIKSSON",
    "NOVAK",
    "IVANOVA",
    "OKAFOR",
    "TANAKA",
    "SILVA",
    "MULLER",
    "KIM",
    "HASSAN",
    "SMITH",
    "KOWALSKA",
    "DUBOIS",
    "ROSSI",
    "GARCIA",
    "NURLANOV",
)
_GIVEN = (
    "ANNA",
    "MARIA",
    "JOHN",
    "AIGERIM",
    "LUCA",
    "WEI",
    "FATIMA",
    "OLEG",
    "SARA",
    "TIMUR",
    "ELENA",
    "JOSE",
    "DAVID",
    "LEILA",
    "ARMAN",
)


def generate_store(
    out: str | Path,
    *,
    records: int,
    seed: int,
    force: bool = False,
    listed_sample: str | Path | None = None,
    unlisted_sample: str | Path | None = None,
    sample_size: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the store atomically (tmp file + rename) and the samples; return a summary."""
    out = Path(out)
    if out.exists() and not force:
        raise SetupError(f"{out} exists (use --force to replace it)")
    gen = ListGenerator(GeneratorSpec(records=records, seed=seed))
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    _unlink_db(tmp)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=records, unit="rec", unit_scale=True, desc="generate")

    def batches() -> Iterator[list[Row]]:
        for rows in gen.rows_parallel():
            yield rows
            if bar is not None:
                bar.update(len(rows))

    try:
        store = SqliteStore(tmp, create=True)
        try:
            n = store.bulk_load(batches())
            version = store.version()
        finally:
            store.close()
        if bar is not None:
            bar.close()
        _unlink_db(out)
        for stale in out.parent.glob(f"{out.name}.idx-*"):
            stale.unlink()
        os.replace(tmp, out)
    finally:
        _unlink_db(tmp)
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "records": n,
        "seconds": seconds,
        "records_per_second": n / seconds if seconds else 0.0,
        "list_version": version,
    }
    if listed_sample:
        lines = [
            _mrz_for(r.issuing_state, r.document_type, r.document_number, i, seed)
            for i, r in enumerate(gen.sample_records(min(sample_size, records)))
        ]
        _write_jsonl(listed_sample, lines)
        summary |= {"listed_sample": str(listed_sample), "listed_sample_count": len(lines)}
    if unlisted_sample:
        lines = [
            _mrz_for(s, c, num, i, seed + 1)
            for i, (s, c, num) in enumerate(gen.unlisted_keys(sample_size))
        ]
        _write_jsonl(unlisted_sample, lines)
        summary |= {"unlisted_sample": str(unlisted_sample), "unlisted_sample_count": len(lines)}
    return summary


def _unlink_db(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _write_jsonl(path: str | Path, docs: list[list[str]]) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="ascii")
    os.replace(tmp, p)


def _mrz_for(state: str, category: str, number: str, i: int, seed: int) -> list[str]:
    """TD3 for passports, TD1 for everything else, with synthetic holder details."""
    from firmware import mrz  # noqa: PLC0415

    r = np.random.default_rng([seed, 0x3A2, i])
    surname = _SURNAMES[int(r.integers(len(_SURNAMES)))]
    given = _GIVEN[int(r.integers(len(_GIVEN)))]
    birth = (
        f"{int(r.integers(50, 100)) % 100:02d}{int(r.integers(1, 13)):02d}"
        f"{int(r.integers(1, 29)):02d}"
    )
    expiry = (
        f"{int(r.integers(27, 36)):02d}{int(r.integers(1, 13)):02d}{int(r.integers(1, 29)):02d}"
    )
    sex = "MF"[int(r.integers(2))]
    fields = {
        "issuing_state": state,
        "document_number": number,
        "surname": surname,
        "given_names": given,
        "nationality": state,
        "birth_date": birth,
        "sex": sex,
        "expiry_date": expiry,
    }
    if category == "P":
        lines = mrz.make_td3(document_code="P", personal_number="", **fields)
    else:
        lines = mrz.make_td1(document_code=category, **fields)
    return list(lines)
