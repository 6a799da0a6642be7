"""Keep test fakes honest: a fake's interface must be the real class's, signature for
signature, so a change to the real port breaks the fake's contract test instead of leaving
tests green against an interface that no longer exists."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, callable)
        if not name.startswith("_") and not inspect.isclass(fn)
    }


def _shape(fn: Any) -> list[tuple[str, Any, Any]]:
    """Parameter names, kinds and defaults (annotations are left out: fakes need none)."""
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


def interface_drift(
    fake: type, real: type, port: Iterable[str], *, test_only: Iterable[str] = ()
) -> list[str]:
    """How ``fake`` differs from ``real``: every method of ``port`` (what the code under test
    calls) must exist on both, and every public method of the fake (but its ``test_only``
    helpers) must exist on the real class with the same parameters. [] when they agree."""
    fakes, reals = _public_methods(fake), _public_methods(real)
    drift = []
    for name in sorted(set(port)):
        for cls, methods in ((fake, fakes), (real, reals)):
            if name not in methods:
                drift.append(f"{cls.__name__} lacks the port method {name}()")
    for name, fn in sorted(fakes.items()):
        if name in set(test_only):
            continue
        if name not in reals:
            drift.append(f"{fake.__name__}.{name}() is not on {real.__name__}")
        elif _shape(fn) != _shape(reals[name]):
            drift.append(
                f"{fake.__name__}.{name}{inspect.signature(fn)} differs from "
                f"{real.__name__}.{name}{inspect.signature(reals[name])}"
            )
    return drift
