"""MRZ dates: raw ``YYMMDD`` validation and century inference for display.

Dates stay raw in every output. A century is inferred only to show a date to a person and
to decide whether a document has expired; validity never depends on today's date.
"""

from __future__ import annotations

import datetime as _dt

_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_UNKNOWN = "<<"


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _day_ok(yy: int | None, month: int | None, day: int) -> bool:
    if day < 1:
        return False
    if month is None:
        return day <= 31
    if month == 2 and day == 29:
        # 29 February is real only if one of the two possible centuries makes a leap year.
        return yy is None or _leap(1900 + yy) or _leap(2000 + yy)
    return day <= _DAYS[month - 1]


def birth_date_ok(raw: str) -> bool:
    """True if ``raw`` is a real ``YYMMDD`` date whose unknown parts are ``<<``.

    Each of year, month and day is either two digits or ``<<`` (Doc 9303-3 §4.8).
    """
    if len(raw) != 6:
        return False
    yy_s, mm_s, dd_s = raw[0:2], raw[2:4], raw[4:6]
    for part in (yy_s, mm_s, dd_s):
        if part != _UNKNOWN and not (part.isascii() and part.isdigit()):
            return False
    yy = None if yy_s == _UNKNOWN else int(yy_s)
    month = None if mm_s == _UNKNOWN else int(mm_s)
    if month is not None and not 1 <= month <= 12:
        return False
    if dd_s == _UNKNOWN:
        return True
    return _day_ok(yy, month, int(dd_s))


def expiry_date_ok(raw: str) -> bool:
    """True if ``raw`` is a real ``YYMMDD`` date of six digits."""
    if len(raw) != 6 or not (raw.isascii() and raw.isdigit()):
        return False
    yy, month, day = int(raw[0:2]), int(raw[2:4]), int(raw[4:6])
    return 1 <= month <= 12 and _day_ok(yy, month, day)


def expiry_year(raw: str, today: _dt.date) -> int | None:
    """The expiry year: the century that puts it within 50 years before/after ``today``."""
    if len(raw) < 2 or not raw[:2].isdigit():
        return None
    yy = int(raw[:2])
    year = today.year - today.year % 100 + yy
    if year > today.year + 50:
        year -= 100
    elif year <= today.year - 50:
        year += 100
    return year


def birth_year(raw: str, today: _dt.date, expiry_raw: str | None = None) -> int | None:
    """The birth year: the latest century that is neither after today nor after expiry.

    Using the expiry date keeps a child's passport (born 2019, expires 2024, read in 2026)
    in the right century, and a birth year next to the expiry year stays before it.
    """
    if len(raw) < 2 or not raw[:2].isdigit():
        return None
    yy = int(raw[:2])
    mmdd = raw[2:6] if raw[2:6].isdigit() else "0101"
    limit = (today.year, today.strftime("%m%d"))
    if expiry_raw and expiry_date_ok(expiry_raw):
        ey = expiry_year(expiry_raw, today)
        if ey is not None and (ey, expiry_raw[2:6]) < limit:
            limit = (ey, expiry_raw[2:6])
    year = today.year - today.year % 100 + yy
    while (year, mmdd) > limit:
        year -= 100
    return year


def display_date(raw: str | None, year: int | None) -> str | None:
    """``YYYY-MM-DD`` for a person, with ``??`` for unknown parts; ``None`` if unreadable."""
    if raw is None or len(raw) != 6:
        return None
    y = f"{year:04d}" if year is not None and raw[:2] != _UNKNOWN else "????"
    mm = raw[2:4] if raw[2:4] != _UNKNOWN else "??"
    dd = raw[4:6] if raw[4:6] != _UNKNOWN else "??"
    return f"{y}-{mm}-{dd}"
