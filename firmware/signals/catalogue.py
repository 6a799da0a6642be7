"""Every word the officer reads comes from one catalogue (``messages.toml``).

English and Russian are complete; the other Central Asian languages are partial drafts.
A missing language or key falls back to English with a logged warning, never to a blank.
"""

from __future__ import annotations

import logging
import string
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LANGUAGES = ("en", "ru", "kk", "ky", "uz", "tg", "tk")
_warned: set[tuple[str, str]] = set()
# Package data read next to this file (the firmware is installed as files, never zipped):
# importlib.resources would cost the kiosk agent about 0.5 MB resident for one read.
_MESSAGES = Path(__file__).with_name("messages.toml")


@cache
def catalogue() -> dict[str, dict[str, str]]:
    data = tomllib.loads(_MESSAGES.read_text("utf-8"))
    return {lang: table for lang, table in data.items() if lang in LANGUAGES}


def needs_review() -> tuple[str, ...]:
    data = tomllib.loads(_MESSAGES.read_text("utf-8"))
    return tuple(data.get("meta", {}).get("needs_review", ()))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def text(key: str, lang: str, **params: Any) -> str:
    """The message ``key`` in ``lang`` with ``params`` filled in (English if missing)."""
    cat = catalogue()
    template = cat.get(lang, {}).get(key)
    if template is None:
        if (lang, key) not in _warned:
            _warned.add((lang, key))
            log.warning("catalogue: no %r text for language %r; using English", key, lang)
        template = cat["en"].get(key)
        if template is None:
            raise KeyError(f"catalogue: unknown message key {key!r}")
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        log.warning("catalogue: %r in %r lacks parameters; using English", key, lang)
        return cat["en"][key].format(**params)
