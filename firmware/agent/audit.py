"""The terminal's audit log: append-only JSON lines, hash-chained with a keyed MAC.

Each line is one JSON object::

    {"seq": 7, "t": "2026-11-28T15:02:11.123Z", "kind": "verdict",
     "qid": "<query id, hex>", "dkh": "<keyed hash of the document key, 16 hex>",
     "outcome": "NO_MATCH", "list_version": "...", "prev": "<mac of line 6>",
     "mac": "<HMAC-SHA256 over this line without 'mac'>"}

- ``dkh`` is ``keyed_hash64(audit_key, document_key)``: the same document gives the same
  value (an auditor holding the key can check whether a given document was scanned), yet
  the log holds no document number, name or MRZ text.
- ``mac`` = HMAC-SHA256(chain key, canonical JSON of the other fields); the chain key is
  derived from the audit key, and ``prev`` is the previous line's ``mac`` (64 zeros for
  the first). An edit, a deleted or inserted line, a reorder or a cut in the middle breaks
  the chain at a named line; without the key nobody can re-forge the chain after an edit.
- A cut at the *end* cannot be seen in the file alone: the head (``seq`` and ``mac`` of the
  last line) is published in the terminal's retained status message as an outside anchor,
  and ``verify(expect_head=...)`` checks against it.
- Each append is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced.
  A line torn by a power cut is cut off at the next start and a ``recovered`` line records
  how many bytes were lost.

Kinds: ``start``, ``accepted`` (scan stored in the outbox), ``unknown`` (UNKNOWN shown
while the query stays pending), ``verdict`` (final verdict; once per query id),
``rescan``, ``recovered``, ``offline`` (an answer from the offline list while the query
stays pending: outcome ``LISTED`` or ``NOT_LISTED``, ``list_version`` the offline list's
version; the query's later online result is its ``verdict`` line).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.errors import BadDataError, OperationError, SetupError

GENESIS = "0" * 64
KINDS = ("start", "accepted", "unknown", "verdict", "rescan", "recovered", "offline")
_FIELDS = ("seq", "t", "kind", "qid", "dkh", "outcome", "list_version", "prev")


def load_audit_key(path: str | os.PathLike[str]) -> bytes:
    """Read ``audit.key``: 32 random bytes as hex (whitespace ignored)."""
    p = Path(path)
    try:
        text = p.read_text().strip()
    except OSError as exc:
        raise SetupError(f"audit key {p}: {exc.strerror or exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SetupError(f"audit key {p}: not hex") from None
    if len(key) < 16:
        raise SetupError(f"audit key {p}: {len(key)} bytes, need at least 16 (32 expected)")
    return key


def chain_key(audit_key: bytes) -> bytes:
    """The MAC key of the chain, kept apart from the key of the document hashes."""
    return hmac.new(audit_key, b"fieldterm audit chain v1", hashlib.sha256).digest()


def _canonical(entry: dict[str, Any]) -> bytes:
    body = {k: entry.get(k) for k in _FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(ckey: bytes, entry: dict[str, Any]) -> str:
    return hmac.new(ckey, _canonical(entry), hashlib.sha256).hexdigest()


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class AuditHead:
    """The last line's position: the anchor published in the status message."""

    seq: int
    mac: str


class AuditLog:
    """Append to the hash-chained log (thread-safe)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        audit_key: bytes,
        *,
        wall: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self._ckey = chain_key(audit_key)
        self._wall = wall
        self._lock = threading.Lock()
        self._verdicts: set[str] = set()
        self._seq: int = 0
        self._prev: str = GENESIS
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise SetupError(f"audit log {self.path}: {exc.strerror or exc}") from exc
        torn = self._recover()
        if torn:
            self.append("recovered", outcome=f"torn_bytes={torn}")

    @property
    def head(self) -> AuditHead:
        return AuditHead(self._seq, self._prev)

    def has_verdict(self, query_id: bytes) -> bool:
        """True when a final verdict for this query is already in the log."""
        return query_id.hex() in self._verdicts

    def append(
        self,
        kind: str,
        *,
        query_id: bytes | None = None,
        dkh: int | None = None,
        outcome: str | None = None,
        list_version: str | None = None,
    ) -> dict[str, Any]:
        """Append one line, fsynced before returning. Returns the entry."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self._seq + 1,
                "t": _utc(self._wall()),
                "kind": kind,
                "qid": query_id.hex() if query_id is not None else None,
                "dkh": f"{dkh:016x}" if dkh is not None else None,
                "outcome": outcome,
                "list_version": list_version,
                "prev": self._prev,
            }
            entry["mac"] = _mac(self._ckey, entry)
            line = json.dumps(entry, separators=(",", ":")) + "\n"
            try:
                os.write(self._fd, line.encode())
                os.fsync(self._fd)
            except OSError as exc:
                raise OperationError(f"audit log {self.path}: {exc.strerror or exc}") from exc
            self._seq, self._prev = entry["seq"], entry["mac"]
            if kind == "verdict" and entry["qid"]:
                self._verdicts.add(entry["qid"])
            return entry

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> int:
        """Find the chain head; cut a torn last line. Returns the torn byte count."""
        self._seq, self._prev = 0, GENESIS
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        with open(self.path, "rb") as fh:
            data = fh.read()
        cut = data.rfind(b"\n") + 1
        torn = len(data) - cut
        if torn:
            os.ftruncate(self._fd, cut)
            os.fsync(self._fd)
        for raw in data[:cut].splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue  # verify() reports it; appending goes on from the last good line
            if not isinstance(entry, dict):
                continue
            self._seq = int(entry.get("seq", self._seq))
            self._prev = str(entry.get("mac", self._prev))
            if entry.get("kind") == "verdict" and entry.get("qid"):
                self._verdicts.add(str(entry["qid"]))
        return torn


@dataclass
class VerifyReport:
    """The result of :func:`verify`: ``ok`` and the problems found, each naming a line."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)
    head: AuditHead | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    lines: Iterable[bytes], audit_key: bytes, *, expect_head: AuditHead | None = None
) -> VerifyReport:
    """Check every line's MAC, sequence and link to the previous line."""
    ckey = chain_key(audit_key)
    rep = VerifyReport()
    prev, seq = GENESIS, 0
    for n, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            rep.problems.append(f"line {n}: torn (no line end)")
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise BadDataError("not an object")
        except ValueError:
            rep.problems.append(f"line {n}: not a JSON object")
            continue
        rep.entries += 1
        kind = str(entry.get("kind"))
        rep.counts[kind] = rep.counts.get(kind, 0) + 1
        mac = entry.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(ckey, entry)):
            rep.problems.append(f"line {n}: MAC mismatch (line edited or wrong key)")
        if entry.get("prev") != prev:
            rep.problems.append(
                f"line {n}: chain broken (a line before it was removed, inserted or reordered)"
            )
        if entry.get("seq") != seq + 1:
            rep.problems.append(f"line {n}: sequence {entry.get('seq')}, expected {seq + 1}")
        prev = str(mac)
        seq = int(entry["seq"]) if isinstance(entry.get("seq"), int) else seq + 1
    rep.head = AuditHead(seq, prev)
    if expect_head is not None and (seq, prev) != (expect_head.seq, expect_head.mac):
        rep.problems.append(
            f"end: head is seq {seq}, expected seq {expect_head.seq} (the log was cut or rolled back)"
        )
    return rep


def verify_file(
    path: str | os.PathLike[str], audit_key: bytes, *, expect_head: AuditHead | None = None
) -> VerifyReport:
    """:func:`verify` on a file."""
    try:
        with open(path, "rb") as fh:
            return verify(fh.readlines(), audit_key, expect_head=expect_head)
    except OSError as exc:
        raise SetupError(f"audit log {path}: {exc.strerror or exc}") from exc
