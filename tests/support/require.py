"""Prerequisites that a test may lack here, and what happens then.

Outside CI a test whose prerequisite is missing (QEMU, root, PostgreSQL, atheris...) is
skipped with the reason. Where the prerequisite is *required*, the same test fails with
the reason instead, so a green run can never hide a test that did not run:

- ``FIELDTERM_REQUIRE=hil,pg,fuzz,root`` requires the named ones; ``all`` requires every one;
- under ``CI=true`` (``.ci/run``) every prerequisite is required unless
  ``FIELDTERM_REQUIRE`` says otherwise.

    from tests.support.require import need
    if shutil.which("qemu-system-aarch64") is None:
        need("hil", "qemu-system-aarch64 missing (make system-deps)")
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: Every prerequisite a test may name; ``need`` refuses a name not listed here.
PREREQUISITES = frozenset(
    {"hil", "pg", "fuzz", "root", "e2fsprogs", "faketime", "micropython", "browser"}
)


def required() -> frozenset[str]:
    """The prerequisites that must be present in this run."""
    raw = os.environ.get("FIELDTERM_REQUIRE")
    if raw is None:
        return PREREQUISITES if os.environ.get("CI", "").lower() == "true" else frozenset()
    names = {p.strip() for p in raw.split(",") if p.strip()}
    if "all" in names:
        return PREREQUISITES
    unknown = names - PREREQUISITES
    if unknown:
        raise ValueError(
            f"FIELDTERM_REQUIRE: unknown prerequisite(s) {sorted(unknown)}; "
            f"known: {sorted(PREREQUISITES)} or 'all'"
        )
    return frozenset(names)


def need(prereq: str, why: str) -> NoReturn:
    """This test cannot run because ``prereq`` is missing (``why``): fail if it is
    required in this run, else skip."""
    if prereq not in PREREQUISITES:
        raise ValueError(f"unknown prerequisite {prereq!r}; known: {sorted(PREREQUISITES)}")
    if prereq in required():
        pytest.fail(f"required prerequisite {prereq!r} missing: {why}", pytrace=False)
    pytest.skip(f"{prereq}: {why}")
