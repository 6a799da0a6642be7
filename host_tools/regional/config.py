"""``regional.toml``: the ``[regional]``, ``[broker]`` and ``[offline]`` sections, validated once.

``[offline]`` is :class:`host_tools.offline.config.OfflineSettings` (the same section
``fieldterm offline build`` reads). Its key file may be missing (a regional.toml from
before the offline list): the service then publishes no list and says so once at start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from firmware.config import ConfigDoc
from firmware.errors import ConfigError
from firmware.transport.mqtt import BrokerConfig
from host_tools.offline.config import OfflineSettings

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class RegionalConfig:
    region: str
    kem_key: Path
    sign_key: Path
    terminals: Path
    sltd_db: str  # SQLite path or postgresql:// URL
    index_key: Path
    audit_db: Path
    share_group: str
    health_file: Path
    replay_window: float
    broker: BrokerConfig
    replay_db: Path
    health_interval: float = 2.0
    refresh_interval: float = 5.0
    alert_key: Path | None = None  # the alert desk's X25519 public key (SPKI PEM)
    alert_interval: float = 2.0
    offline: OfflineSettings | None = None  # None: the defaults, next to the config
    audit_retention_days: float = 365.0  # regional audit rows older than this are deleted
    refusal_burst: int = 50  # refusals a terminal may cost before it is rate limited
    refusal_rate: float = 5.0  # refusals per second it regains (guard.py)
    #: Open sessions kept (about 0.7 kB each) and refused tickets remembered (about 0.3 kB
    #: each); the oldest go first. The defaults cost some 100 MB when both are full.
    max_sessions: int = 100_000
    max_refused_tickets: int = 100_000
    #: Where the query-path index of a postgresql:// store lives (a SQLite store keeps it
    #: beside the file). Give each regional process its own: several share a store.
    index_dir: Path | None = None

    @property
    def offline_settings(self) -> OfflineSettings:
        """``[offline]``, or its defaults (key file ``offline-list.key`` beside the index key)."""
        return self.offline or OfflineSettings(self.index_key.with_name("offline-list.key"))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None, *, environ: dict[str, str] | None = None
    ) -> RegionalConfig:
        """regional.toml (``/etc/fieldterm/regional.toml`` when ``path`` is None), layered with
        drop-ins and the environment as :mod:`firmware.config` does."""
        doc = ConfigDoc.load(path, name="regional", environ=environ)
        sec = doc.section("regional")
        region = sec.text("region")
        if not _ID.fullmatch(region):
            raise ConfigError(
                f"{region!r} is not a valid region id",
                field="regional.region",
                source=sec.source_of("region"),
            )
        group = sec.text("share_group", "regional")
        if not _ID.fullmatch(group):
            raise ConfigError(
                f"{group!r} is not a valid group",
                field="regional.share_group",
                source=sec.source_of("share_group"),
            )
        files = {}
        for key in ("kem_key", "sign_key", "terminals", "index_key"):
            files[key] = sec.path(key)
            if not files[key].is_file():
                raise ConfigError(
                    f"file not found: {files[key]}",
                    field=f"regional.{key}",
                    source=sec.source_of(key),
                )
        db = sec.text("sltd_db")
        if "://" not in db:
            p = Path(db).expanduser()
            db = str(p if p.is_absolute() else sec.base_of("sltd_db") / p)
        audit = sec.path("audit_db", "regional-audit.sqlite")
        alert_key = sec.opt_path("alert_key")
        if alert_key is not None and not alert_key.is_file():
            raise ConfigError(
                f"file not found: {alert_key} (the alert desk's public key; "
                "`fieldterm provision broker-config` writes it)",
                field="regional.alert_key",
                source=sec.source_of("alert_key"),
            )
        cfg = cls(
            region=region,
            kem_key=files["kem_key"],
            sign_key=files["sign_key"],
            terminals=files["terminals"],
            sltd_db=db,
            index_key=files["index_key"],
            audit_db=audit,
            share_group=group,
            health_file=sec.path("health_file", "regional-health.json"),
            replay_window=sec.number("replay_window", 120.0, lo=5.0, hi=3600.0),
            replay_db=sec.path("replay_db", str(audit.with_name("regional-replay.sqlite"))),
            health_interval=sec.number("health_interval", 2.0, lo=0.1, hi=600.0),
            refresh_interval=sec.number("refresh_interval", 5.0, lo=0.1, hi=3600.0),
            alert_key=alert_key,
            alert_interval=sec.number("alert_interval", 2.0, lo=0.1, hi=60.0),
            broker=BrokerConfig.from_section(doc.section("broker")),
            offline=OfflineSettings.from_section(doc.section("offline", required=False)),
            audit_retention_days=sec.number("audit_retention_days", 365.0, lo=1.0, hi=36500.0),
            refusal_burst=sec.integer("refusal_burst", 50, lo=1, hi=1_000_000),
            refusal_rate=sec.number("refusal_rate", 5.0, lo=0.01, hi=1_000_000.0),
            max_sessions=sec.integer("max_sessions", 100_000, lo=100, hi=10_000_000),
            max_refused_tickets=sec.integer("max_refused_tickets", 100_000, lo=100, hi=10_000_000),
            index_dir=sec.opt_path("index_dir"),
        )
        doc.check_unknown()
        return cfg
