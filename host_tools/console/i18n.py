"""The console's strings (``strings.toml``) in the kiosk's seven languages.

en and ru are complete. kk, ky, uz, tg and tk take the words the kiosk catalogue already
has (:mod:`firmware.signals.catalogue`, mapped in the ``[kiosk]`` table) and English for
everything else, so a page is never missing a label.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from firmware.signals import catalogue

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
    if lang in doc and lang != "kiosk":
        out.update(doc[lang])
    elif lang in LANGUAGES and lang != "en":
        for key, kiosk_key in doc["kiosk"].items():
            word = catalogue.catalogue().get(lang, {}).get(kiosk_key)
            if word:
                out[key] = word.capitalize() if key == "offline" else word
    return out


def pick(lang: str | None) -> str:
    return lang if lang in LANGUAGES else "en"
