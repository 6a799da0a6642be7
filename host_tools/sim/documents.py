"""Documents for the scanner simulator: from a file, or synthetic valid MRZs of every type."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

from firmware.errors import SetupError
from firmware.mrz import build


def read_documents(path: str | os.PathLike[str]) -> list[list[str]]:
    """Documents from a file: JSON arrays of lines, one per line; or plain text.

    Plain text: MRZ lines, documents separated by blank lines.
    """
    text = Path(path).read_text(encoding="utf-8")
    docs: list[list[str]] = []
    current: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SetupError(f"{path}:{number}: not a JSON array: {exc.msg}") from None
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise SetupError(f"{path}:{number}: expected a JSON array of strings")
            docs.append(value)
        elif line:
            current.append(line)
            continue
        if current:
            docs.append(current)
            current = []
    if current:
        docs.append(current)
    return docs


_SURNAMES = ("ERIKSSON", "OKONKWO", "NURLANOVA", "DUBOIS", "TANAKA", "MUSTERMANN", "SMITH")
_GIVEN = ("ANNA MARIA", "AIGERIM", "JEAN", "KENJI", "ERIKA", "JOHN PAUL", "DILNOZA")
_STATES = ("UTO", "KAZ", "KGZ", "UZB", "TJK", "TKM", "D", "FRA")


def synthetic_documents(rng: random.Random, count: int | None = None) -> Iterator[list[str]]:
    """Valid synthetic MRZs of every type (TD1, TD2, TD3, MRV-A, MRV-B); endless if no count."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    made = 0
    while count is None or made < count:
        doc_type = rng.choice(("TD3", "TD3", "TD1", "TD2", "MRVA", "MRVB"))
        number = rng.choice(letters) + "".join(rng.choice("0123456789") for _ in range(8))
        state = rng.choice(_STATES)
        fields = {
            "issuing_state": state,
            "nationality": state,
            "surname": rng.choice(_SURNAMES),
            "given_names": rng.choice(_GIVEN),
            "document_number": number,
            "birth_date": f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            "sex": rng.choice("MFX"),
            "expiry_date": f"{rng.randint(27, 35):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        }
        yield build(doc_type, **fields)
        made += 1
