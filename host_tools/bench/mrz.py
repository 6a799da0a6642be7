"""``fieldterm bench mrz``: parse throughput and corpus accuracy against PyPI ``mrz``.

Both parsers read the same documents (the corpus of :mod:`host_tools.bench.mrz_corpus`).
``mrz`` 0.6.2 is installed only in the benchmark environment (``make bench``); without it
the benchmark reports our figures alone. A parser gets a case right when its valid/invalid
verdict matches and, for a valid document, it reads every key field correctly.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from firmware.mrz import parse
from host_tools.bench.mrz_corpus import FIELDS, Case, build_corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=3.0, help="time per parser (default 3)")
    parser.add_argument("--quick", action="store_true", help="0.5 s per parser")
    parser.add_argument("--per-type", type=int, default=40, help="ordinary documents per type")


def _ours() -> Callable[[list[str]], tuple[bool, dict[str, str]]]:
    def run(lines: list[str]) -> tuple[bool, dict[str, str]]:
        r = parse(lines)
        return r.valid, {k: getattr(r, k) for k in FIELDS}

    return run


def _theirs() -> tuple[Callable[[list[str]], tuple[bool, dict[str, str]]], str] | None:
    try:  # installed only in the benchmark environment, so imported only here
        from mrz.checker.mrva import MRVACodeChecker  # noqa: PLC0415
        from mrz.checker.mrvb import MRVBCodeChecker  # noqa: PLC0415
        from mrz.checker.td1 import TD1CodeChecker  # noqa: PLC0415
        from mrz.checker.td2 import TD2CodeChecker  # noqa: PLC0415
        from mrz.checker.td3 import TD3CodeChecker  # noqa: PLC0415
    except ImportError:
        return None

    def run(lines: list[str]) -> tuple[bool, dict[str, str]]:
        length = len(lines[0]) if lines else 0
        visa = bool(lines) and lines[0][:1] == "V"
        if len(lines) == 3:
            checker = TD1CodeChecker
        elif length == 36:
            checker = MRVBCodeChecker if visa else TD2CodeChecker
        else:
            checker = MRVACodeChecker if visa else TD3CodeChecker
        try:
            c = checker("\n".join(lines))
            ok = bool(c)
            f = c.fields()
        except Exception:  # the library signals bad input with its own exceptions
            return False, {}
        return ok, {
            "document_code": f.document_type,
            "issuing_state": f.country,
            "surname": " ".join(f.surname.split()),
            "given_names": " ".join(f.name.split()),
            "document_number": f.document_number,
            "nationality": f.nationality,
            "birth_date": f.birth_date,
            "sex": f.sex,
            "expiry_date": f.expiry_date,
        }

    return run, version("mrz")


def _score(
    run: Callable[[list[str]], tuple[bool, dict[str, str]]], cases: list[Case]
) -> tuple[int, Counter[str]]:
    right = 0
    wrong: Counter[str] = Counter()
    for case in cases:
        valid, fields = run(case.lines)
        good = valid == case.valid and (
            not case.valid or all(fields.get(k) == v for k, v in case.fields.items())
        )
        if good:
            right += 1
        else:
            wrong[case.category.split("/")[0]] += 1
    return right, wrong


def _interleaved(
    runners: list[Callable[[list[str]], Any]], docs: list[list[str]], seconds: float
) -> list[float]:
    """Documents per second for each runner, measured in alternating passes over ``docs``.

    Alternating whole passes means a change in machine load (other processes on a shared
    box) falls on every parser alike, so the ratio stays meaningful.
    """
    done = [0] * len(runners)
    spent = [0.0] * len(runners)
    gc.collect()
    gc.disable()  # as timeit does: collector pauses would land on whichever parser is running
    try:
        return _passes(runners, docs, seconds, done, spent)
    finally:
        gc.enable()


def _passes(
    runners: list[Callable[[list[str]], Any]],
    docs: list[list[str]],
    seconds: float,
    done: list[int],
    spent: list[float],
) -> list[float]:
    deadline = time.perf_counter() + seconds * len(runners)
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        for i, runner in enumerate(runners):
            start = time.perf_counter()
            for lines in docs:
                runner(lines)
            spent[i] += time.perf_counter() - start
            done[i] += len(docs)
        rounds += 1
    return [d / t for d, t in zip(done, spent, strict=True)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds = 0.5 if getattr(args, "quick", False) else args.seconds
    cases = build_corpus(per_type=args.per_type)
    docs = [c.lines for c in cases]
    ours = _ours()
    right, wrong = _score(ours, cases)
    result: dict[str, Any] = {
        "corpus_cases": len(cases),
        "corpus_valid_cases": sum(c.valid for c in cases),
        "fieldterm_correct": right,
        "fieldterm_wrong_by_category": dict(sorted(wrong.items())) or "none",
    }
    theirs = _theirs()
    if theirs is None:
        (rate,) = _interleaved([ours], docs, seconds)
        result["fieldterm_docs_per_s"] = round(rate)
        result["mrz_package"] = "not installed (run `make bench` for the comparison)"
        return result
    their_run, their_version = theirs
    t_right, t_wrong = _score(their_run, cases)
    ours_rate, their_rate = _interleaved([ours, their_run], docs, seconds)
    result.update(
        {
            "fieldterm_docs_per_s": round(ours_rate),
            "mrz_package": their_version,
            "mrz_correct": t_right,
            "mrz_wrong_by_category": dict(sorted(t_wrong.items())) or "none",
            "mrz_docs_per_s": round(their_rate),
            "throughput_ratio": round(ours_rate / their_rate, 2),
        }
    )
    return result
