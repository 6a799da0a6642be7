"""What ``fieldterm offline build`` reads from regional.toml.

``[regional]`` region, sign_key and sltd_db (the regional service's own keys; other keys of
that section are the service's business), and ``[offline]``::

    list_key          the offline-list key file (default offline-list.key next to the
                      config): 64 hex characters; every kiosk bundle carries the same key
    fingerprint_bits  8 (default, about 9 bits per record, 0.39 % false positives) or 16
    chunk_size        bytes per distribution chunk (default 65536)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from firmware.config import ConfigDoc
from firmware.errors import ConfigError
from firmware.offline.manifest import MAX_CHUNK, MIN_CHUNK
from firmware.protocol.topics import validate_id


@dataclass(frozen=True)
class OfflineBuildConfig:
    region: str
    sign_key: Path
    sltd_db: str
    list_key: Path
    fingerprint_bits: int = 8
    chunk_size: int = 65536

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, environ: dict[str, str] | None = None
    ) -> OfflineBuildConfig:
        doc = ConfigDoc.load(path, environ=environ)
        reg = doc.section("regional")
        try:
            region = validate_id("region", reg.text("region"))
        except ConfigError:
            raise ConfigError(
                "not a valid region id", field="regional.region", source=reg.source
            ) from None
        sign_key = reg.path("sign_key")
        db = reg.text("sltd_db")
        if "://" not in db:
            p = Path(db).expanduser()
            db = str(p if p.is_absolute() else reg.base / p)
        off = doc.section("offline", required=False)
        list_key = off.path("list_key", "offline-list.key")
        bits = off.integer("fingerprint_bits", 8)
        if bits not in (8, 16):
            raise ConfigError(
                "must be 8 or 16", field="offline.fingerprint_bits", source=off.source
            )
        chunk = off.integer("chunk_size", 65536, lo=MIN_CHUNK, hi=MAX_CHUNK)
        off.check_unknown()
        for field, p in (("regional.sign_key", sign_key), ("offline.list_key", list_key)):
            if not p.is_file():
                raise ConfigError(
                    f"file not found: {p}"
                    + (
                        " (the offline-list key: 64 hex characters; provisioning must create it)"
                        if field == "offline.list_key"
                        else ""
                    ),
                    field=field,
                    source=reg.source,
                )
        return cls(region, sign_key, db, list_key, bits, chunk)
