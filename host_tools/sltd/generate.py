"""Synthetic SLTD lists: deterministic by seed, realistic spread, fast enough for 100 M.

Spread (inferred from INTERPOL's published figures, not real data):
- ~170 issuing states with Zipf-like weights, so a few big reporters dominate (the first
  ten hold about half of the records);
- document categories: passports ~66 %, ID cards ~28 %, visas, crew certificates and
  other IDs the rest;
- statuses: lost ~55 %, stolen ~30 %, stolen blank, revoked, invalidated the rest;
- reported within the last 10 years (SLTD's default review period), the event date a
  few weeks before the report when known; the reporting country is usually the issuer.

Document numbers are unique by construction: record ``i`` gets a number formatted from
a keyed bijection of ``i`` over ``[0, 10^9)``, in one of a few national formats picked per
(state, category). Rows are made in fixed-size chunks from ``default_rng([seed, chunk])``,
so the same seed gives the same list whatever else runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from host_tools.sltd.records import SltdRecord, Status
from host_tools.sltd.store import Row, row_to_record

CHUNK = 100_000
MAX_RECORDS = 1_000_000_000
#: Reports fall in the 10 years before this date (fixed, so output is deterministic).
REFERENCE_DATE = dt.date(2026, 11, 1)

# ICAO 9303 issuing-state codes (Germany is "D"), big reporters first.
STATES = (
    "USA GBR D FRA ITA ESP CAN AUS NLD CHN IND RUS TUR BRA POL MEX ZAF JPN KOR SWE "
    "BEL CHE AUT PRT GRC ROU UKR ARG COL PHL IDN THA VNM MYS PAK NGA EGY IRN SAU ARE "
    "ISR NOR DNK FIN IRL CZE HUN BGR SRB HRV SVK SVN LTU LVA EST BLR KAZ UZB KGZ TJK "
    "TKM AZE ARM GEO MDA ALB MKD BIH MNE CYP MLT LUX ISL NZL SGP HKG LKA BGD NPL AFG "
    "IRQ SYR JOR LBN KWT QAT BHR OMN YEM MAR DZA TUN LBY SDN ETH KEN UGA TZA RWA GHA "
    "CIV SEN CMR AGO MOZ ZMB ZWE BWA NAM MDG MUS CHL PER VEN ECU BOL PRY URY CRI PAN "
    "GTM HND SLV NIC CUB DOM HTI JAM TTO BHS BRB MNG KHM LAO MMR BRN TLS PNG FJI WSM "
    "TON VUT SLB KIR MHL FSM PLW NRU TUV MDV BTN BEN BFA MLI NER TCD GIN SLE LBR TGO "
    "GAB COG COD CAF GNQ GMB GNB CPV STP COM SYC DJI ERI SOM"
).split()  # 174 states, as many as contributed to SLTD in 2016

CATEGORIES = ("P", "I", "V", "C", "A")
CATEGORY_P = (0.66, 0.28, 0.03, 0.02, 0.01)
STATUSES = (
    Status.LOST,
    Status.STOLEN,
    Status.STOLEN_BLANK,
    Status.REVOKED,
    Status.INVALIDATED,
)
STATUS_P = (0.55, 0.30, 0.07, 0.05, 0.03)
_MASK30 = (1 << 30) - 1
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DAYS = 3650
_STATE_OBJ = np.array(STATES, dtype=object)
_CAT_OBJ = np.array(CATEGORIES, dtype=object)
_STATUS_OBJ = np.array([s.value for s in STATUSES], dtype=object)
# ISO dates and years by age in days before REFERENCE_DATE (ages up to 10 years + 90 days).
_DATE_OBJ = np.array(
    [dt.date.fromordinal(REFERENCE_DATE.toordinal() - a).isoformat() for a in range(_DAYS + 90)],
    dtype=object,
)
_YEAR = np.array([d[:4] for d in _DATE_OBJ], dtype=object)


def state_weights(s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, len(STATES) + 1, dtype=np.float64) ** s
    return w / w.sum()


def _fmt_id(state: str, cat: str) -> int:
    """Which national number format a (state, category) uses: 0, 1 or 2."""
    return hashlib.blake2b(f"{state}|{cat}".encode(), digest_size=1).digest()[0] % 3


def _fmt0(x: int) -> str:  # 9 digits
    return f"{x:09d}"


def _fmt1(x: int) -> str:  # two letters (the first A-D) + 7 digits
    q = x // 10_000_000
    return f"{_LETTERS[q // 26]}{_LETTERS[q % 26]}{x % 10_000_000:07d}"


def _fmt2(x: int) -> str:  # one letter A-J + 8 digits
    return f"{_LETTERS[x // 100_000_000]}{x % 100_000_000:08d}"


def format_number(fmt: int, x: int) -> str:
    """Injective for x in [0, 10^9) within each format; no format starts with "Z"."""
    return (_fmt0, _fmt1, _fmt2)[fmt](x)


def unlisted_number(x: int) -> str:
    """A number no generator format produces ("Z" + letter + 7 digits): never listed."""
    return f"Z{chr(65 + (x // 10_000_000) % 26)}{x % 10_000_000:07d}"


class _Permutation:
    """A keyed bijection of [0, 10^9) (xorshift-multiply rounds on 30 bits, cycle-walked)."""

    def __init__(self, seed: int):
        r = np.random.default_rng([seed, 0x5171D])
        self.m = [int(v) | 1 for v in r.integers(1 << 20, 1 << 30, 3)]
        self.k = [int(v) for v in r.integers(0, 1 << 30, 3)]

    def _round(self, x: np.ndarray) -> np.ndarray:
        m30 = np.uint64(_MASK30)
        for m, k in zip(self.m, self.k, strict=True):
            x = (x ^ np.uint64(k)) & m30
            x = (x * np.uint64(m)) & m30
            x ^= x >> np.uint64(15)
        return x

    def __call__(self, i: np.ndarray) -> np.ndarray:
        x = self._round(i.astype(np.uint64))
        out_of_range = x >= 1_000_000_000
        while out_of_range.any():
            x[out_of_range] = self._round(x[out_of_range])
            out_of_range = x >= 1_000_000_000
        return x


@dataclass(frozen=True)
class GeneratorSpec:
    records: int
    seed: int


class ListGenerator:
    """Makes the rows of a synthetic list, chunk by chunk."""

    def __init__(self, spec: GeneratorSpec):
        if not 0 < spec.records <= MAX_RECORDS:
            raise ValueError(f"records must be between 1 and {MAX_RECORDS}")
        self.spec = spec
        self._perm = _Permutation(spec.seed)
        self._w = state_weights()
        self._fmt = np.array([[_fmt_id(s, c) for c in CATEGORIES] for s in STATES])

    @property
    def chunks(self) -> int:
        return -(-self.spec.records // CHUNK)

    def rows(self) -> Iterator[list[Row]]:
        for c in range(self.chunks):
            yield self.chunk(c)

    def rows_parallel(self, prefetch: int = 3) -> Iterator[list[Row]]:
        """Like :meth:`rows`, made in a helper process while the caller inserts."""
        if self.chunks < 4:
            yield from self.rows()
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as ex:
            pending: deque[Future[list[Row]]] = deque()
            for c in range(self.chunks):
                pending.append(ex.submit(_chunk_in_worker, self.spec, c))
                if len(pending) > prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def chunk(self, c: int) -> list[Row]:
        """Rows of chunk ``c`` (records ``c*CHUNK`` onwards), column by column in numpy."""
        start = c * CHUNK
        n = min(CHUNK, self.spec.records - start)
        r = np.random.default_rng([self.spec.seed, c])
        states = r.choice(len(STATES), n, p=self._w)
        cats = r.choice(len(CATEGORIES), n, p=CATEGORY_P)
        stats = r.choice(len(STATUSES), n, p=STATUS_P)
        age = r.integers(0, _DAYS, n)
        event_age = age + r.integers(0, 90, n)
        has_event = r.random(n) < 0.8
        foreign = r.random(n) < 0.05
        reporters = np.where(foreign, r.choice(len(STATES), n, p=self._w), states)
        xs = self._perm(np.arange(start, start + n, dtype=np.uint64)).tolist()
        fmts = self._fmt[states, cats].tolist()
        formatters = (_fmt0, _fmt1, _fmt2)
        numbers = [formatters[f](x) for f, x in zip(fmts, xs, strict=True)]
        rep_names = _STATE_OBJ[reporters].tolist()
        years = _YEAR[age].tolist()
        refs = [
            f"{rp}/{y}/{i % 10_000_000:07d}"
            for rp, y, i in zip(rep_names, years, range(start, start + n), strict=True)
        ]
        events = np.asarray(np.where(has_event, _DATE_OBJ[event_age], None)).tolist()
        return list(
            zip(
                _STATE_OBJ[states].tolist(),
                _CAT_OBJ[cats].tolist(),
                numbers,
                _STATUS_OBJ[stats].tolist(),
                rep_names,
                _DATE_OBJ[age].tolist(),
                events,
                refs,
                strict=True,
            )
        )

    def sample_records(self, k: int, categories: tuple[str, ...] = ("P", "I")) -> list[SltdRecord]:
        """k listed records (of the given categories) drawn from the first chunks."""
        r = np.random.default_rng([self.spec.seed, 0xA11])
        out: list[SltdRecord] = []
        for c in range(self.chunks):
            rows = [row for row in self.chunk(c) if row[1] in categories]
            r.shuffle(rows)  # type: ignore[arg-type,unused-ignore]
            out += [row_to_record(row) for row in rows[: k - len(out)]]
            if len(out) >= k:
                break
        return out

    def unlisted_keys(self, k: int) -> list[tuple[str, str, str]]:
        """k (state, category, number) keys that this list never contains."""
        r = np.random.default_rng([self.spec.seed, 0x0FF])
        states = r.choice(len(STATES), k, p=self._w).tolist()
        cats = r.choice(2, k).tolist()
        xs = r.integers(0, 1_000_000_000, k).tolist()
        return [
            (STATES[s], ("P", "I")[c], unlisted_number(x))
            for s, c, x in zip(states, cats, xs, strict=True)
        ]


_WORKER_GEN: ListGenerator | None = None


def _chunk_in_worker(spec: GeneratorSpec, c: int) -> list[Row]:
    global _WORKER_GEN  # noqa: PLW0603 (one generator per helper process)
    if _WORKER_GEN is None or _WORKER_GEN.spec != spec:
        _WORKER_GEN = ListGenerator(spec)
    return _WORKER_GEN.chunk(c)
