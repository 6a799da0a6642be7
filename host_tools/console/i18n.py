"""The console's strings (``strings.toml``) in the kiosk's seven languages.

en and ru are complete. kk, ky, uz, tg and tk have the words the kiosk catalogue
(firmware/signals/messages.toml) already has, copied into ``strings.toml`` (host tools do
not import the kiosk's packages), and English for everything else, so a page is never
missing a label.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

LANGUAGES = ("en", "ru", "kk", "ky", "uz", "tg", "tk")
NAMES = {
    "en": "English", "ru": "Русский", "kk": "Қазақша", "ky": "Кыргызча",
    "uz": "O'zbekcha", "tg": "Тоҷикӣ", "tk": "Türkmençe",
}  # fmt: skip


@functools.cache
def _doc() -> dict[str, dict[str, str]]:
    with (Path(__file__).with_name("strings.toml")).open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def strings(lang: str) -> dict[str, str]:
    """Every key in ``lang``, falling back to the kiosk catalogue and then English."""
    doc = _doc()
    out = dict(doc["en"])
    out.update(doc.get(lang, {}))
    return out


def pick(lang: str | None) -> str:
    return lang if lang in LANGUAGES else "en"
