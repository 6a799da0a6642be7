"""What the regional reads from regional.toml's ``[offline]`` section.

``[regional]`` region, sign_key and sltd_db (the regional service's own keys; other keys of
that section are the service's business), and ``[offline]``::

    list_key            the offline-list key file (default offline-list.key next to the
                        config): 64 hex characters; every kiosk bundle carries the same key
    fingerprint_bits    8 (default, about 9 bits per record, 0.39 % false positives) or 16
    chunk_size          bytes per distribution chunk (default 65536)
    publish_interval    seconds between the regional's looks at its store: a change is
                        published as a delta at the next look (default 900)
    refresh_after       seconds after which a new (empty) delta is published even when the
                        store has not changed, so a kiosk's copy shows a fresh age (900)
    rebuild_after       seconds after which a new full list replaces deltas (default 86400)
    max_delta_fraction  a delta larger than this fraction of the full list triggers a
                        new full list (default 0.05)
    max_delta_changes   ... or larger than this many added + removed hashes (default 1000000)

:class:`OfflineSettings` is the section as a value object, shared by ``fieldterm offline
build`` (:class:`OfflineBuildConfig`) and the regional service
(``host_tools.regional.config``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from firmware.config import ConfigDoc, Section
from firmware.errors import ConfigError
from firmware.offline.manifest import MAX_CHUNK, MIN_CHUNK
from firmware.protocol.topics import validate_id
from host_tools.offline.publisher import PublishPolicy

LIST_KEY_HINT = " (the offline-list key: 64 hex characters; provisioning must create it)"


@dataclass(frozen=True)
class OfflineSettings:
    """The ``[offline]`` section of regional.toml, validated."""

    list_key: Path
    fingerprint_bits: int = 8
    chunk_size: int = 65536
    publish_interval: float = 900.0
    refresh_after: float = 900.0
    rebuild_after: float = 86400.0
    max_delta_fraction: float = 0.05
    max_delta_changes: int = 1_000_000

    @classmethod
    def from_section(cls, off: Section) -> OfflineSettings:
        """Read and check every key (unknown keys are refused); the key file's existence is
        the caller's to check (the build refuses, the service warns)."""
        list_key = off.path("list_key", "offline-list.key")
        bits = off.integer("fingerprint_bits", 8)
        if bits not in (8, 16):
            raise ConfigError(
                "must be 8 or 16",
                field="offline.fingerprint_bits",
                source=off.source_of("fingerprint_bits"),
            )
        out = cls(
            list_key=list_key,
            fingerprint_bits=bits,
            chunk_size=off.integer("chunk_size", 65536, lo=MIN_CHUNK, hi=MAX_CHUNK),
            publish_interval=off.number("publish_interval", 900.0, lo=0.1, hi=86400.0),
            refresh_after=off.number("refresh_after", 900.0, lo=1.0, hi=86400.0),
            rebuild_after=off.number("rebuild_after", 86400.0, lo=1.0, hi=30 * 86400.0),
            max_delta_fraction=off.number("max_delta_fraction", 0.05, lo=0.0, hi=1.0),
            max_delta_changes=off.integer("max_delta_changes", 1_000_000, lo=1),
        )
        off.check_unknown()
        return out

    @property
    def policy(self) -> PublishPolicy:
        """When :class:`~host_tools.offline.publisher.ListPublisher` makes a full list."""
        return PublishPolicy(
            delta_interval=self.publish_interval,
            refresh_after=self.refresh_after,
            rebuild_after=self.rebuild_after,
            max_delta_fraction=self.max_delta_fraction,
            max_delta_changes=self.max_delta_changes,
        )


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
        off = OfflineSettings.from_section(doc.section("offline", required=False))
        for field, p in (("regional.sign_key", sign_key), ("offline.list_key", off.list_key)):
            if not p.is_file():
                raise ConfigError(
                    f"file not found: {p}" + (LIST_KEY_HINT if field == "offline.list_key" else ""),
                    field=field,
                    source=reg.source,
                )
        return cls(region, sign_key, db, off.list_key, off.fingerprint_bits, off.chunk_size)
