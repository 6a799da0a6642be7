"""Backends chosen by one config value from a table, as python-can chooses its buses.

A :class:`BackendTable` maps each name a config key accepts to ``"module:attribute"``.
The module is imported only when its backend is chosen, so a backend's driver library
(RPi.GPIO, luma.oled, psycopg) loads only where that backend is in use, and adding a
backend is one line in its table, never another branch in the code that opens it.

    PANELS = BackendTable("signals.backend", {"mock": "firmware.signals.mock:MockPanel"})
    PANELS.load("mock")      # -> the MockPanel class
    PANELS.load("gpoi")      # ConfigError: signals.backend: unknown backend 'gpoi' ...
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Generic, TypeVar, cast

from firmware.errors import ConfigError, SetupError

T = TypeVar("T")


class BackendTable(Generic[T]):
    """The backends a config key (``setting``, e.g. ``signals.backend``) can name."""

    def __init__(self, setting: str, entries: Mapping[str, str]) -> None:
        for name, target in entries.items():
            module, sep, attr = target.partition(":")
            if not (module and sep and attr):
                raise SetupError(f"backend {name!r}: {target!r} is not 'module:attribute'")
        self.setting = setting
        self._entries = dict(entries)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the config key accepts, in table order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def load(self, name: str, *, setting: str | None = None) -> T:
        """The backend called ``name``, its module imported now. An unknown name is a
        :class:`ConfigError` naming the config key (``setting`` overrides the table's, for
        a caller whose value came from elsewhere, e.g. a command-line flag) and the known
        names."""
        target = self._entries.get(name)
        if target is None:
            raise ConfigError(
                f"unknown backend {name!r}; known: {', '.join(self.names)}",
                field=setting or self.setting,
            )
        module, _, attr = target.partition(":")
        return cast(T, getattr(import_module(module), attr))
