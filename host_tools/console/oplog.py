"""The operator audit log: one JSON line per operator action, each hash-chained to the last.

Every line is ``{"seq", "t", "who", "action", "target", "detail", "prev", "hash"}`` where
``hash = SHA-256(prev ‖ canonical JSON of the line without "hash")`` and ``prev`` is the
previous line's hash (64 zeros for the first). :func:`verify` re-computes the chain: an
edited, removed or reordered line breaks it at that line. Truncating the tail is not
detectable from the file alone; ``fieldterm console verify-audit`` prints the head hash so
it can be noted elsewhere (as the kiosk's audit head is anchored in its status).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(prev: str, body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev.encode() + canon.encode()).hexdigest()


@dataclass(frozen=True)
class Verified:
    ok: bool
    entries: int
    head: str
    error: str | None = None


class OperatorLog:
    """Appends chained entries to ``path`` (created 0600); safe from several threads."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        v = verify(self.path)
        if not v.ok:
            raise ValueError(f"operator audit log {self.path} does not verify: {v.error}")
        self.seq, self.head = v.entries, v.head

    def append(self, who: str, action: str, target: str = "", **detail: Any) -> dict[str, Any]:
        with self._lock:
            body = {
                "seq": self.seq + 1,
                "t": round(self._clock(), 3),
                "who": who,
                "action": action,
                "target": target,
                "detail": detail,
                "prev": self.head,
            }
            entry = {**body, "hash": _digest(self.head, body)}
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
            fd = self.path.open("a", encoding="utf-8")
            try:
                self.path.chmod(0o600)
                fd.write(line)
                fd.flush()
            finally:
                fd.close()
            self.seq, self.head = self.seq + 1, str(entry["hash"])
            return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x]


def verify(path: Path) -> Verified:
    """Re-compute the chain of ``path`` (a missing file is an empty, valid log)."""
    path = Path(path)
    if not path.exists():
        return Verified(True, 0, GENESIS)
    prev, n = GENESIS, 0
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(raw)
            claimed = entry.pop("hash")
        except (ValueError, KeyError, AttributeError):
            return Verified(False, n, prev, f"line {lineno}: not an audit entry")
        if entry.get("prev") != prev:
            return Verified(False, n, prev, f"line {lineno}: does not follow line {lineno - 1}")
        if entry.get("seq") != n + 1:
            return Verified(False, n, prev, f"line {lineno}: seq {entry.get('seq')}, not {n + 1}")
        if _digest(prev, entry) != claimed:
            return Verified(False, n, prev, f"line {lineno}: hash does not match its content")
        prev, n = claimed, n + 1
    return Verified(True, n, prev)
