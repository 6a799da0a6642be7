"""Scan intake: what a scanned document yields for the query, or why it must be rescanned.

Readers send text even when their OCR failed, so every check digit was re-validated by
the MRZ parser; here a valid MRZ becomes a document key, and anything else a short
reason code (the first MRZ error's code, or the key's refusal), which is audited and
shown, never the MRZ text itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScanCheck:
    """The document key of a usable scan, or the reason it is not usable."""

    key: Any = None
    reason: str | None = None

    @property
    def usable(self) -> bool:
        return self.key is not None


def check_scan(mrz: Any, dockey_from_mrz: Callable[[Any], Any]) -> ScanCheck:
    """A parsed MRZ (``valid``, ``errors``) to a :class:`ScanCheck`."""
    if not mrz.valid:
        return ScanCheck(reason=mrz.errors[0].code if mrz.errors else "invalid")
    try:
        return ScanCheck(key=dockey_from_mrz(mrz))
    except (ValueError, TypeError) as exc:  # BadDataError is a ValueError
        return ScanCheck(reason=f"dockey:{type(exc).__name__}")
