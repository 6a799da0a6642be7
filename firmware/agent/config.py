"""The agent's configuration: terminal.toml, all sections, validated once.

The query client reads ``[terminal]``, ``[broker]`` and ``[protocol]``
(:mod:`firmware.client.config`); this module adds ``[scanner]``
(:class:`firmware.scanner.port.ScannerConfig`), ``[signals]``, ``[agent]`` and
``[offline]`` (read by :func:`firmware.offline.config.read_offline_section`), and then
rejects any section or key that nobody read: a typo in a terminal's config is a start-up
error naming ``section.key``, never a silently ignored setting.

Layers: defaults < the file < ``FIELDTERM_<SECTION>__<KEY>`` environment < ``overrides``
(the command line's ``--signals console`` and friends).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.config import ConfigDoc, Section
from firmware.errors import ConfigError
from firmware.offline.config import DEFAULT_MAX_AGE, STORE_SUBDIR, read_offline_section
from firmware.signals.backends import DISPLAYS, PANELS

#: ``signals.backend`` and ``signals.display`` accept the names of the backend tables.
SIGNAL_BACKENDS = PANELS.names
DISPLAY_BACKENDS = DISPLAYS.names
MRZ_MODES = ("strict", "tolerant", "repair")
LANGUAGES = ("en", "ru", "kk", "ky", "uz", "tg", "tk")
PIN_NAMES = ("green", "amber", "red", "buzzer", "button")


@dataclass(frozen=True)
class SignalsConfig:
    """``[signals]``: which LED/buzzer and display backends, pins and display bus."""

    backend: str = "gpio"
    display: str = "ssd1306"
    pins: Mapping[str, int] = field(default_factory=dict)
    i2c_bus: int = 1
    i2c_address: int = 0x3C
    buzzer: bool = True
    discreet: bool = False  # a possible match sounds like a clear (docs/annunciator.md)

    @classmethod
    def from_section(cls, sec: Section) -> SignalsConfig:
        pins_raw = sec._get("pins", {})
        if not isinstance(pins_raw, Mapping):
            raise ConfigError("expected a table of name = BCM pin", field="signals.pins")
        pins: dict[str, int] = {}
        for name, value in pins_raw.items():
            if name not in PIN_NAMES:
                raise ConfigError(
                    f"unknown pin name (one of {', '.join(PIN_NAMES)})",
                    field=f"signals.pins.{name}",
                )
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 27:
                raise ConfigError(
                    f"{value!r} is not a BCM GPIO number 0-27", field=f"signals.pins.{name}"
                )
            pins[name] = value
        if len(set(pins.values())) != len(pins):
            raise ConfigError("two signals share one pin", field="signals.pins")
        return cls(
            backend=sec.choice("backend", SIGNAL_BACKENDS, "gpio"),
            display=sec.choice("display", DISPLAY_BACKENDS, "ssd1306"),
            pins=pins,
            i2c_bus=sec.integer("i2c_bus", 1, lo=0, hi=31),
            i2c_address=sec.integer("i2c_address", 0x3C, lo=0x03, hi=0x77),
            buzzer=sec.flag("buzzer", True),
            discreet=sec.flag("discreet", False),
        )


@dataclass(frozen=True)
class AgentSection:
    """``[agent]``: state directory, audit key, MRZ mode and the officer-facing timings."""

    state_dir: Path
    audit_key: Path
    mrz_mode: str = "repair"
    events_file: Path | None = None
    result_hold: float = 5.0
    unknown_hold: float = 10.0
    rescan_hold: float = 4.0
    notice_hold: float = 30.0
    retry_interval: float = 10.0
    status_interval: float = 60.0

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.log"

    @classmethod
    def from_section(cls, sec: Section) -> AgentSection:
        def secs(key: str, default: float, hi: float = 3600.0) -> float:
            return sec.number(key, default, lo=0.1, hi=hi)

        return cls(
            state_dir=sec.path("state_dir", "/var/lib/fieldterm"),
            audit_key=sec.path("audit_key", "audit.key"),
            mrz_mode=sec.choice("mrz_mode", MRZ_MODES, "repair"),
            events_file=sec.opt_path("events_file"),
            result_hold=secs("result_hold", 5.0),
            unknown_hold=secs("unknown_hold", 10.0),
            rescan_hold=secs("rescan_hold", 4.0),
            notice_hold=secs("notice_hold", 30.0),
            retry_interval=secs("retry_interval", 10.0),
            status_interval=secs("status_interval", 60.0, hi=86400.0),
        )


@dataclass(frozen=True)
class OfflineSection:
    """``[offline]``: the offline-list key file (default ``offline-list.key`` next to
    terminal.toml) and the list's maximum age (default 48 h). A missing key file is not an
    error here: the agent then gives no offline answers (UNKNOWN) and warns once."""

    list_key: Path
    max_age: float = DEFAULT_MAX_AGE
    sign_public: Path | None = None  # [protocol] regional_sign_public: signs the lists

    def store_dir(self, state_dir: Path) -> Path:
        """``<state_dir>/offline``: where the agent keeps its installed list."""
        return state_dir / STORE_SUBDIR


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs. ``client`` is the query client's own config object."""

    terminal_id: str
    region: str
    language: str
    client: Any
    scanner: Any  # firmware.scanner.port.ScannerConfig
    signals: SignalsConfig
    agent: AgentSection
    query_timeout: float
    source: str | None = None
    offline: OfflineSection | None = None
    lane: Any = None  # firmware.lane.publisher.LaneConfig: the site's annunciator, or None


def load_agent_config(
    path: str | os.PathLike[str] | None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Load terminal.toml (see hardware/terminal.example.toml for every option): ``path``, or
    ``/etc/fieldterm/terminal.toml`` when None, then drop-ins, environment and ``overrides``
    as :mod:`firmware.config` layers them."""
    doc = ConfigDoc.load(path, name="terminal", environ=environ, overrides=overrides)
    return agent_config_from_doc(doc)


def agent_config_from_doc(doc: ConfigDoc) -> AgentConfig:
    from firmware.scanner.port import ScannerConfig  # noqa: PLC0415

    try:
        from firmware.client.config import client_config_from_doc  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(f"the query client's config loader is missing: {exc}") from exc

    client = client_config_from_doc(doc)
    # [terminal] was opened by the client loader; reuse it so its used keys stay marked.
    terminal = doc._sections.get("terminal") or doc.section("terminal")
    language = terminal.choice("language", LANGUAGES, "en")
    scanner = ScannerConfig.from_section(doc.section("scanner"))
    signals = SignalsConfig.from_section(doc.section("signals", required=False))
    agent = AgentSection.from_section(doc.section("agent"))
    list_key, max_age = read_offline_section(doc)
    sign = getattr(client, "regional_sign_public", None)
    offline = OfflineSection(list_key, max_age, None if sign is None else Path(sign))
    from firmware.lane.publisher import read_lane_section  # noqa: PLC0415

    lane = read_lane_section(doc)
    doc.check_unknown()
    return AgentConfig(
        terminal_id=_attr(client, "terminal_id", "id"),
        region=_attr(client, "region"),
        language=str(language),
        client=client,
        scanner=scanner,
        signals=signals,
        agent=agent,
        query_timeout=float(_attr(client, "query_timeout", default=2.0)),
        source=doc.source,
        offline=offline,
        lane=lane,
    )


def _attr(obj: Any, *names: str, default: Any = None) -> Any:
    """Find a value in the client config (its field names are the client's business)."""
    for holder in (obj, getattr(obj, "terminal", None), getattr(obj, "protocol", None)):
        if holder is None:
            continue
        for n in names:
            if hasattr(holder, n):
                return getattr(holder, n)
    if default is not None:
        return default
    raise ConfigError(f"client config has no {names[0]}")
