"""What the kiosk's offline-list commands read from terminal.toml.

``[terminal] region``, ``[protocol] regional_sign_public`` (the pinned regional key; the
list's signature is checked against it), ``[agent] state_dir`` (the store lives in
``<state_dir>/offline``) and ``[offline]``::

    list_key   the offline-list key file (default offline-list.key next to terminal.toml),
               64 hex characters, the same in every bundle of the region
    max_age    seconds after which an installed list no longer answers (default 172800, 48 h)

Other keys of those sections belong to the agent and the query client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from firmware.config import ConfigDoc
from firmware.errors import ConfigError
from firmware.protocol.topics import validate_id

STORE_SUBDIR = "offline"
DEFAULT_MAX_AGE = 48 * 3600.0


def read_offline_section(doc: ConfigDoc) -> tuple[Path, float]:
    """``[offline] list_key`` and ``max_age`` of ``doc`` (the file is not opened here)."""
    off = doc.section("offline", required=False)
    list_key = off.path("list_key", "offline-list.key")
    max_age = off.number("max_age", DEFAULT_MAX_AGE, lo=60.0, hi=90 * 86400.0)
    off.check_unknown()
    return list_key, max_age


@dataclass(frozen=True)
class OfflineTerminalConfig:
    region: str
    sign_public: Path
    list_key: Path
    state_dir: Path
    max_age: float = DEFAULT_MAX_AGE

    @property
    def store_dir(self) -> Path:
        """``<state_dir>/offline``: where the agent keeps its installed list."""
        return self.state_dir / STORE_SUBDIR

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
    ) -> OfflineTerminalConfig:
        doc = ConfigDoc.load(path, environ=environ)
        term = doc.section("terminal")
        try:
            region = validate_id("region", term.text("region"))
        except ConfigError:
            raise ConfigError(
                "not a valid region id", field="terminal.region", source=term.source
            ) from None
        proto = doc.section("protocol")
        sign = proto.opt_path("regional_sign_public")
        if sign is None:
            raise ConfigError(
                "missing: the offline list's signature is checked against this key",
                field="protocol.regional_sign_public",
                source=proto.source,
            )
        agent = doc.section("agent", required=False)
        sdir = state_dir or agent.path("state_dir", "/var/lib/fieldterm")
        list_key, max_age = read_offline_section(doc)
        for field, p, what in (
            ("protocol.regional_sign_public", sign, "the regional's signing key"),
            (
                "offline.list_key",
                list_key,
                "the offline-list key; provisioning puts it in the bundle",
            ),
        ):
            if not p.is_file():
                raise ConfigError(f"file not found: {p} ({what})", field=field, source=doc.source)
        return cls(region, sign, list_key, sdir, max_age)
