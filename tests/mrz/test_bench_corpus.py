"""The benchmark corpus and runner: our parser gets every case right, and run() reports."""

from __future__ import annotations

import argparse

from host_tools.bench import mrz as bench_mrz
from host_tools.bench.mrz_corpus import build_corpus


def test_corpus_covers_the_hard_categories_and_both_verdicts():
    cases = build_corpus(per_type=5)
    categories = {c.category.split("/")[0] for c in cases}
    assert {"icao_specimen", "long_number", "sex_x", "special_code", "crew_member_AC",
            "birth_unknown_parts", "birth_next_to_expiry", "invalid_date"} <= categories  # fmt: skip
    assert any(c.valid for c in cases) and any(not c.valid for c in cases)


def test_our_parser_gets_every_corpus_case_right():
    cases = build_corpus()
    right, wrong = bench_mrz._score(bench_mrz._ours(), cases)
    assert wrong == {} and right == len(cases)


def test_run_reports_figures_without_the_mrz_package():
    parser = argparse.ArgumentParser()
    bench_mrz.add_arguments(parser)
    args = parser.parse_args(["--seconds", "0.05", "--per-type", "2"])
    result = bench_mrz.run(args)
    assert result["fieldterm_correct"] == result["corpus_cases"]
    assert result["fieldterm_docs_per_s"] > 0
    assert "mrz_package" in result
