"""The query client's part of ``terminal.toml``: ``[terminal]``, ``[broker]``, ``[protocol]``.

Other sections ([scanner], [signals], [agent]) belong to the agent and are ignored here;
the agent's loader calls :func:`client_config_from_doc` on the same document and then
checks every key it knows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from firmware.config import ConfigDoc
from firmware.errors import ConfigError
from firmware.transport.mqtt import BrokerConfig

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class ClientConfig:
    """Everything the sealed query client needs; validated, paths absolute."""

    terminal_id: str
    region: str
    broker: BrokerConfig
    identity_key: Path
    regional_kem_public: Path
    regional_sign_public: Path | None = None
    query_timeout: float = 2.0
    #: The adaptive timeout's ceiling (docs/protocol.md); equal to query_timeout: fixed.
    query_timeout_max: float = 10.0
    session_lifetime: float = 86400.0
    site: str | None = None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None, *, environ: dict[str, str] | None = None
    ) -> ClientConfig:
        """terminal.toml (``/etc/fieldterm/terminal.toml`` when ``path`` is None), layered
        with drop-ins and the environment as :mod:`firmware.config` does."""
        return client_config_from_doc(ConfigDoc.load(path, name="terminal", environ=environ))


TerminalConfig = ClientConfig


def _ident(sec: object, key: str) -> str:
    value = sec.text(key)  # type: ignore[attr-defined]
    if not _ID.fullmatch(value):
        raise ConfigError(
            f"{value!r} must match [a-z0-9][a-z0-9-]{{0,62}}",
            field=f"{sec.name}.{key}",  # type: ignore[attr-defined]
            source=sec.source_of(key),  # type: ignore[attr-defined]
        )
    return value


def _existing(sec: object, key: str, required: bool = True) -> Path | None:
    p = sec.path(key) if required else sec.opt_path(key)  # type: ignore[attr-defined]
    if p is not None and not p.is_file():
        raise ConfigError(
            f"file not found: {p}",
            field=f"{sec.name}.{key}",  # type: ignore[attr-defined]
            source=sec.source_of(key),  # type: ignore[attr-defined]
        )
    return p


def client_config_from_doc(doc: ConfigDoc) -> ClientConfig:
    """Read [terminal] (id, region, site), [broker] and [protocol] from a loaded document."""
    term = doc.section("terminal")
    terminal_id = _ident(term, "id")
    region = _ident(term, "region")
    site = term.opt_str("site")
    broker_sec = doc.section("broker")
    broker = BrokerConfig.from_section(broker_sec)
    broker_sec.check_unknown()
    proto = doc.section("protocol")
    identity = _existing(proto, "identity_key")
    kem = _existing(proto, "regional_kem_public")
    sign = _existing(proto, "regional_sign_public", required=False)
    timeout = proto.number("query_timeout", 2.0, lo=0.05, hi=600.0)
    timeout_max = proto.number("query_timeout_max", max(10.0, timeout), lo=0.05, hi=600.0)
    if timeout_max < timeout:
        raise ConfigError(
            f"{timeout_max:g} is below query_timeout ({timeout:g}); the adaptive timeout "
            "runs from query_timeout up to query_timeout_max (equal: a fixed timeout)",
            field="protocol.query_timeout_max",
            source=proto.source_of("query_timeout_max"),
        )
    lifetime = proto.number("session_lifetime", 86400.0, lo=60.0, hi=30 * 86400.0)
    proto.check_unknown()
    assert identity is not None and kem is not None
    return ClientConfig(
        terminal_id=terminal_id,
        region=region,
        broker=broker,
        identity_key=identity,
        regional_kem_public=kem,
        regional_sign_public=sign,
        query_timeout=timeout,
        query_timeout_max=timeout_max,
        session_lifetime=lifetime,
        site=site,
    )
