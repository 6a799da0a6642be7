"""Configuration in one place: defaults < /etc/fieldterm/*.toml < environment < flags.

Files are TOML. Values are validated once, here, into frozen dataclasses; past this
module code handles only valid objects. Errors name the file and ``section.key``.
Relative paths in a file resolve against that file's directory, so a provisioned
bundle can be moved as a whole.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError

ETC_DIR = Path("/etc/fieldterm")
ENV_PREFIX = "FIELDTERM_"


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

    def __init__(self, name: str, table: Mapping[str, Any], source: str | None, base: Path):
        self.name = name
        self.table = dict(table)
        self.source = source
        self.base = base
        self._used: set[str] = set()

    def _err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(msg, field=f"{self.name}.{key}", source=self.source)

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
        if isinstance(v, str) and v.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return v.lower() in {"1", "true", "yes", "on"}
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
        return p if p.is_absolute() else (self.base / p)

    def opt_path(self, key: str) -> Path | None:
        v = self.opt_str(key)
        if v is None:
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.base / p)

    def check_unknown(self) -> None:
        """Reject keys nobody reads: a typo in a config must not be silently ignored."""
        unknown = sorted(set(self.table) - self._used)
        if unknown:
            raise self._err(unknown[0], "unknown key (typo?)")


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


class ConfigDoc:
    """A loaded, merged configuration document, handed out section by section."""

    def __init__(
        self,
        data: Mapping[str, Any],
        source: str | None,
        base: Path,
        env_only: frozenset[str] = frozenset(),
    ):
        self.data = data
        self.source = source
        self.base = base
        #: sections only the environment names: they may belong to another fieldterm tool
        #: run from the same environment, so an unread one is not an error here
        self.env_only = env_only
        self._sections: dict[str, Section] = {}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ConfigDoc:
        p = Path(path).resolve()
        file_data = load_toml(p)
        env = env_overrides(environ)
        data = merge(file_data, env, overrides or {})
        env_only = frozenset(env) - set(file_data) - set(overrides or {})
        return cls(data, str(p), p.parent, env_only)

    def section(self, name: str, *, required: bool = True) -> Section:
        table = self.data.get(name)
        if table is None:
            if required:
                raise ConfigError("missing section", field=f"[{name}]", source=self.source)
            table = {}
        if not isinstance(table, Mapping):
            raise ConfigError("expected a table", field=f"[{name}]", source=self.source)
        sec = Section(name, table, self.source, self.base)
        self._sections[name] = sec
        return sec

    def check_unknown(self) -> None:
        for name in self.data:
            if name not in self._sections and name not in self.env_only:
                raise ConfigError("unknown section (typo?)", field=f"[{name}]", source=self.source)
        for sec in self._sections.values():
            sec.check_unknown()
