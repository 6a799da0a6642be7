"""``terminals.json``: the pinned terminal identity keys, reloaded when the file changes.

A revoked terminal, or one no longer listed, has no keys: its session tickets stop
opening. :meth:`TerminalRegistry.poll` (called from a timer thread) reloads on an mtime
change and tells ``on_forget`` which terminals lost keys, so their cached sessions go too.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.errors import ConfigError

log = logging.getLogger(__name__)

_Entry = tuple[Ed25519PublicKey, float | None]  # key, not_after (epoch) or None


def parse_terminals(data: Any, source: str) -> dict[str, list[_Entry]]:
    """Active terminals -> keys (revoked ones left out). Errors name the field."""
    if not isinstance(data, dict) or not isinstance(data.get("terminals"), dict):
        raise ConfigError("expected an object with 'terminals'", field="terminals", source=source)
    out: dict[str, list[_Entry]] = {}
    for tid, entry in data["terminals"].items():
        where = f"terminals.{tid}"
        if not isinstance(entry, dict):
            raise ConfigError("expected an object", field=where, source=source)
        if entry.get("revoked", False):
            continue
        keys: list[_Entry] = []
        for i, k in enumerate(entry.get("keys") or []):
            try:
                raw = base64.b64decode(k["ed25519"], validate=True)
                pub = Ed25519PublicKey.from_public_bytes(raw)
                na = k.get("not_after")
                not_after = (
                    None
                    if na is None
                    else dt.datetime.fromisoformat(str(na).replace("Z", "+00:00")).timestamp()
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"bad key: {exc}", field=f"{where}.keys[{i}]", source=source
                ) from exc
            keys.append((pub, not_after))
        out[str(tid)] = keys
    return out


class TerminalRegistry:
    """Thread-safe view of terminals.json; ``keys(tid)`` is the session layer's callback."""

    def __init__(
        self,
        path: Path,
        *,
        on_forget: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        import time  # noqa: PLC0415

        self.path = Path(path)
        self._on_forget = on_forget
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._mtime: tuple[int, int] | None = None
        self._terms: dict[str, list[_Entry]] = {}
        self.reloads = 0
        self.poll()
        if self._mtime is None:
            raise ConfigError("cannot read terminals file", source=str(self.path))

    def keys(self, terminal_id: str) -> Sequence[Ed25519PublicKey]:
        now = self._clock()
        entries = self._terms.get(terminal_id, ())
        return [k for k, na in entries if na is None or now < na]

    def __len__(self) -> int:
        return len(self._terms)

    def poll(self) -> bool:
        """Reload if the file changed; returns whether it did. A bad file keeps the old view."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            log.warning("terminals file unreadable: %s", exc)
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._mtime:
            return False
        try:
            data = json.loads(self.path.read_text())
            new = parse_terminals(data, str(self.path))
        except (OSError, ValueError) as exc:
            log.error("terminals file rejected, keeping the previous one: %s", exc)
            self._mtime = stamp
            return False
        with self._lock:
            old, self._terms, self._mtime = self._terms, new, stamp
            self.reloads += 1
        gone = [
            t
            for t, ks in old.items()
            if t not in new
            or {k.public_bytes_raw() for k, _ in new[t]} != {k.public_bytes_raw() for k, _ in ks}
        ]
        log.info("terminals: %d active (reload %d), %d cut off", len(new), self.reloads, len(gone))
        if self._on_forget is not None:
            for t in gone:
                self._on_forget(t)
        return True
