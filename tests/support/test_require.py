"""The skip-or-fail switch itself: a required prerequisite fails, never skips."""

from __future__ import annotations

import pytest

from tests.support import require


def test_outside_ci_nothing_is_required(monkeypatch):
    monkeypatch.delenv("FIELDTERM_REQUIRE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert require.required() == frozenset()
    with pytest.raises(pytest.skip.Exception, match="pg: no initdb"):
        require.need("pg", "no initdb")


def test_ci_requires_everything(monkeypatch):
    monkeypatch.delenv("FIELDTERM_REQUIRE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert require.required() == require.PREREQUISITES
    with pytest.raises(pytest.fail.Exception, match="required prerequisite 'hil' missing: no qemu"):
        require.need("hil", "no qemu")


def test_explicit_list_overrides_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("FIELDTERM_REQUIRE", "pg,fuzz")
    assert require.required() == {"pg", "fuzz"}
    with pytest.raises(pytest.skip.Exception):
        require.need("hil", "no qemu")
    with pytest.raises(pytest.fail.Exception):
        require.need("fuzz", "no atheris")


def test_unknown_names_are_refused(monkeypatch):
    monkeypatch.setenv("FIELDTERM_REQUIRE", "pg,qemu")
    with pytest.raises(ValueError, match=r"unknown prerequisite\(s\) \['qemu'\]"):
        require.required()
    monkeypatch.setenv("FIELDTERM_REQUIRE", "all")
    with pytest.raises(ValueError, match="unknown prerequisite 'gpu'"):
        require.need("gpu", "none")
