"""Configuration in one place: defaults < /etc/fieldterm/*.toml < environment < flags.

Layers, lowest first, merged key by key (a later layer replaces a key, never a whole
section):

1. defaults, in the loaders (firmware/agent/config.py and friends);
2. the tool's file: ``--config FILE``, or ``/etc/fieldterm/<tool>.toml`` when no file is
   given (``terminal.toml`` for the agent and ``fieldterm query``, ``regional.toml`` for
   the regional service); ``FIELDTERM_ETC`` moves the ``/etc/fieldterm`` root (tests);
3. drop-ins: ``<stem>.d/*.toml`` next to that file (``/etc/fieldterm/terminal.d/``), in
   name order, so a site can change one key without editing the provisioned file;
4. the environment: ``FIELDTERM_<SECTION>__<KEY>=value``;
5. command-line flags (``overrides``).

Files are TOML. Values are validated once, here, into frozen dataclasses; past this
module code handles only valid objects. Errors name ``section.key`` and the file the
value came from. Relative paths resolve against the main file's directory (from its
drop-ins and the environment too), so a provisioned bundle can be moved as a whole;
relative paths given as flags resolve against the working directory.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError

ETC_DIR = Path("/etc/fieldterm")
ETC_ENV = "FIELDTERM_ETC"
ENV_PREFIX = "FIELDTERM_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def etc_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The system configuration root: ``$FIELDTERM_ETC`` or ``/etc/fieldterm``."""
    env = os.environ if environ is None else environ
    return Path(env.get(ETC_ENV) or ETC_DIR)


def default_config_path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where a tool's file is when no ``--config`` is given: ``<etc>/<name>.toml``."""
    return etc_dir(environ) / f"{name}.toml"


def drop_in_files(main: Path) -> list[Path]:
    """``<stem>.d/*.toml`` next to ``main``, in name order (none when the directory is absent)."""
    directory = main.with_name(main.stem + ".d")
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".toml" and p.is_file())


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one TOML file, turning every failure into a :class:`ConfigError` that names it."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError("file not found", source=str(p)) from exc
    except PermissionError as exc:
        raise ConfigError("permission denied (run as the fieldterm user?)", source=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(p)) from exc


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``FIELDTERM_<SECTION>__<KEY>=value`` becomes ``{section: {key: value}}``."""
    env = os.environ if environ is None else environ
    out: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge section tables, later layers winning key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for section, table in layer.items():
            if isinstance(table, Mapping):
                out.setdefault(section, {}).update(table)
            else:
                out[section] = table
    return out


class Section:
    """Typed access to one table with errors that say ``section.key`` and the source file."""

    def __init__(
        self,
        name: str,
        table: Mapping[str, Any],
        source: str | None,
        base: Path,
        origins: Mapping[str, Origin] | None = None,
    ):
        self.name = name
        self.table = dict(table)
        self.source = source
        self.base = base
        #: per key: which layer it came from (file, environment or flags) and its path base
        self.origins = dict(origins or {})
        self._used: set[str] = set()

    def source_of(self, key: str) -> str | None:
        """Where ``key``'s value came from: a file path, an environment variable or the flags."""
        origin = self.origins.get(key)
        return origin.source if origin else self.source

    def base_of(self, key: str) -> Path:
        """The directory a relative path in ``key`` resolves against."""
        origin = self.origins.get(key)
        return origin.base if origin else self.base

    def _err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(msg, field=f"{self.name}.{key}", source=self.source_of(key))

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key in self.table:
            return self.table[key]
        if default is _REQUIRED:
            raise self._err(key, "missing (required)")
        return default

    def text(self, key: str, default: Any = None) -> str:
        v = self._get(key, default if default is not None else _REQUIRED)
        if not isinstance(v, str) or not v:
            raise self._err(key, f"expected a non-empty string, got {v!r}")
        return v

    def opt_str(self, key: str) -> str | None:
        v = self._get(key, None)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self._err(key, f"expected a string, got {v!r}")
        return v

    def integer(
        self, key: str, default: Any = None, *, lo: int | None = None, hi: int | None = None
    ) -> int:
        v = self._get(key, default if default is not None else _REQUIRED)
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise self._err(key, f"expected an integer, got {v!r}") from None
        if isinstance(v, bool) or (isinstance(v, float) and v != iv):
            raise self._err(key, f"expected an integer, got {v!r}")
        if (lo is not None and iv < lo) or (hi is not None and iv > hi):
            raise self._err(key, f"{iv} is out of range [{lo}, {hi}]")
        return iv

    def number(
        self, key: str, default: Any = None, *, lo: float | None = None, hi: float | None = None
    ) -> float:
        v = self._get(key, default if default is not None else _REQUIRED)
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise self._err(key, f"expected a number, got {v!r}") from None
        if isinstance(v, bool):
            raise self._err(key, f"expected a number, got {v!r}")
        if (lo is not None and fv < lo) or (hi is not None and fv > hi):
            raise self._err(key, f"{fv} is out of range [{lo}, {hi}]")
        return fv

    def flag(self, key: str, default: bool | None = None) -> bool:
        v = self._get(key, default if default is not None else _REQUIRED)
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in _TRUE | _FALSE:
            return v.lower() in _TRUE
        raise self._err(key, f"expected true or false, got {v!r}")

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        v = self._get(key, default if default is not None else _REQUIRED)
        if v not in choices:
            raise self._err(key, f"{v!r} is not one of {', '.join(choices)}")
        return str(v)

    def path(self, key: str, default: Any = None) -> Path:
        """A path; relative ones resolve against the config file's directory."""
        v = self.text(key, default)
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.base_of(key) / p)

    def opt_path(self, key: str) -> Path | None:
        v = self.opt_str(key)
        if v is None:
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.base_of(key) / p)

    def check_unknown(self) -> None:
        """Reject keys nobody reads: a typo in a config must not be silently ignored."""
        unknown = sorted(set(self.table) - self._used)
        if unknown:
            raise self._err(unknown[0], "unknown key (typo?)")


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


@dataclass(frozen=True, slots=True)
class Origin:
    """The layer one value came from: ``source`` for messages, ``base`` for relative paths."""

    source: str
    base: Path


def _layer_origins(
    data: Mapping[str, Any], origin: Origin, into: dict[tuple[str, str], Origin]
) -> None:
    for section, table in data.items():
        if isinstance(table, Mapping):
            for key in table:
                into[(section, key)] = origin


class ConfigDoc:
    """A loaded, merged configuration document, handed out section by section."""

    def __init__(
        self,
        data: Mapping[str, Any],
        source: str | None,
        base: Path,
        env_only: frozenset[str] = frozenset(),
        *,
        origins: Mapping[tuple[str, str], Origin] | None = None,
        files: tuple[str, ...] = (),
    ):
        self.data = data
        self.source = source
        self.base = base
        self.origins = dict(origins or {})
        #: every file that was layered, main file first, then its drop-ins
        self.files = files
        #: sections only the environment names: they may belong to another fieldterm tool
        #: run from the same environment, so an unread one is not an error here
        self.env_only = env_only
        self._sections: dict[str, Section] = {}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None,
        *,
        name: str | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ConfigDoc:
        """Layer the file (``path``, or ``<etc>/<name>.toml`` when None), its drop-ins, the
        environment and ``overrides`` (see the module docstring)."""
        if path is None:
            if name is None:
                raise ConfigError("no configuration file given")
            main = default_config_path(name, environ)
            if not main.is_file():
                raise ConfigError(
                    f"file not found (give --config FILE, or create it; {ETC_ENV} moves {ETC_DIR})",
                    source=str(main),
                )
        else:
            main = Path(path)
        main = main.resolve()
        origins: dict[tuple[str, str], Origin] = {}
        layers: list[Mapping[str, Any]] = []
        files: list[str] = []
        for file in (main, *drop_in_files(main)):
            data = load_toml(file)
            # a drop-in extends the main file: its relative paths mean the same as there
            _layer_origins(data, Origin(str(file), main.parent), origins)
            layers.append(data)
            files.append(str(file))
        in_files = {section for layer in layers for section in layer}
        env = env_overrides(environ)
        for section, table in env.items():
            for key in table:
                var = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
                origins[(section, key)] = Origin(f"environment {var}", main.parent)
        flags = overrides or {}
        _layer_origins(flags, Origin("command line", Path.cwd()), origins)
        data = merge(*layers, env, flags)
        env_only = frozenset(env) - in_files - set(flags)
        return cls(data, str(main), main.parent, env_only, origins=origins, files=tuple(files))

    def section(self, name: str, *, required: bool = True) -> Section:
        table = self.data.get(name)
        if table is None:
            if required:
                raise ConfigError("missing section", field=f"[{name}]", source=self.source)
            table = {}
        if not isinstance(table, Mapping):
            raise ConfigError("expected a table", field=f"[{name}]", source=self.source)
        keys = {k: o for (sect, k), o in self.origins.items() if sect == name}
        sec = Section(name, table, self.source, self.base, keys)
        self._sections[name] = sec
        return sec

    def check_unknown(self) -> None:
        for name in self.data:
            if name not in self._sections and name not in self.env_only:
                raise ConfigError("unknown section (typo?)", field=f"[{name}]", source=self.source)
        for sec in self._sections.values():
            sec.check_unknown()
