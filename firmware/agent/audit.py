"""The terminal's audit log: append-only JSON lines, hash-chained with a keyed MAC, kept
in chained segments and read as a stream.

Each line is one JSON object::

    {"seq": 7, "t": "2026-11-28T15:02:11.123Z", "kind": "verdict",
     "qid": "<query id, hex>", "dkh": null,
     "outcome": "NO_MATCH", "list_version": "...", "prev": "<mac of line 6>",
     "mac": "<HMAC-SHA256 over this line without 'mac'>"}

- Nothing in a line can be turned back into a document (issue 13, part 4): lines name the
  query id only. ``dkh`` (a keyed hash of the document key, written by versions before
  issue 13) is always null now: its key was on the same card, so each could be
  brute-forced in about 80 s. The regional's audit maps the query id to its keyed hash.
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
- Segments: ``audit.log`` is the active segment. Once it holds ``segment_bytes`` (4 MiB,
  about 16 000 lines) it is renamed ``audit-<seq of its first line, 12 digits>.log`` and
  a new ``audit.log`` goes on with the chain (its first ``prev`` is the last ``mac`` of
  the segment before), so removing, reordering or editing a whole segment breaks the
  chain like a line. A start reads only the tail of the newest segment (constant time
  and memory, whatever the log's length); :func:`verify_file` streams every segment in
  order.

Kinds: ``start``, ``accepted`` (scan stored in the outbox), ``unknown`` (UNKNOWN shown
while the query stays pending), ``verdict`` (final verdict; once per query id),
``rescan``, ``recovered``, ``offline`` (an answer from the offline list while the query
stays pending: outcome ``LISTED`` or ``NOT_LISTED``, ``list_version`` the offline list's
version; the query's later online result is its ``verdict`` line), ``latched`` (right
after a POSSIBLE_MATCH verdict: outcome ``scan=<scan number>``), ``acknowledged`` (the
officer released that match, or an offline hit) and ``anchor`` (the regional's record of
this log's head disagrees with it: outcome says how).

At open the active segment is verified whole: lines damaged in it (garbled, edited) are an
alarm, reported once (a ``recovered`` line ``damaged_at=<byte offsets>`` follows them, and
a later start raises only damage at other offsets). The lines stay: they are evidence,
and the chain goes on from the head. A head that does not verify puts the segment aside
instead.

A POSSIBLE MATCH latches until acknowledged, across crashes too (issue 14: 12 of 12 were
not shown again after a restart): :meth:`AuditLog.latched_matches` gives the POSSIBLE_MATCH
verdicts with no ``acknowledged`` line after them. A ``start`` line lists the matches still
latched at that start (``pending=N latched=<qid>:<scan>,...``), so only the lines since
the last start are read. An offline hit (``offline`` LISTED) latches the same way while its
query is pending: :meth:`AuditLog.acknowledged_among` tells which ones were released.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.errors import SetupError, StorageError
from firmware.quarantine import put_aside

GENESIS = "0" * 64
KINDS = (
    "start",
    "accepted",
    "unknown",
    "verdict",
    "rescan",
    "recovered",
    "offline",
    "latched",
    "acknowledged",
    "anchor",
)
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


#: Rotate the active segment once it is this large (bytes).
SEGMENT_BYTES = 4 << 20
#: How much of a segment's end is read at first to find the chain head (doubled if needed).
_TAIL = 64 << 10
_VERDICT = b'"kind":"verdict"'
_ACCEPTED = b'"kind":"accepted"'
_ACKNOWLEDGED = b'"kind":"acknowledged"'
#: A ``recovered`` line's outcome after damaged lines were reported at a start.
_DAMAGED = "damaged_at="
#: At most this many byte offsets in one such line (more are raised again at a start).
_MAX_DAMAGED = 64
#: What :meth:`AuditLog.latched_matches` reads (lines are written with no spaces).
_LATCH_MARKS = (b'"kind":"start"', b'"kind":"latched"', _ACKNOWLEDGED)
_MATCH = b'"outcome":"POSSIBLE_MATCH"'


def parse_latched(outcome: Any) -> dict[str, int | None]:
    """The ``latched=<qid>:<scan>,...`` part of a ``start`` line's outcome, by query id hex."""
    out: dict[str, int | None] = {}
    if not isinstance(outcome, str):
        return out
    for token in outcome.split():
        if not token.startswith("latched="):
            continue
        for item in token[len("latched=") :].split(","):
            qid, _, scan = item.partition(":")
            if _is_hex(qid) and qid:
                out[qid] = int(scan) if scan.isdigit() else None
    return out


def _scan_of(outcome: Any) -> int | None:
    text = outcome if isinstance(outcome, str) else ""
    return int(text[5:]) if text.startswith("scan=") and text[5:].isdigit() else None


def segment_name(active: Path, first_seq: int) -> Path:
    """The name a full segment gets: ``audit-<first seq, 12 digits>.log`` beside it."""
    return active.with_name(f"{active.stem}-{first_seq:012d}{active.suffix}")


def segments(active: str | os.PathLike[str]) -> list[Path]:
    """Every segment of the log whose active segment is ``active``, oldest first, the
    active one last (when it exists)."""
    a = Path(active)
    full: list[tuple[int, Path]] = []
    for p in a.parent.glob(f"{a.stem}-*{a.suffix}"):
        digits = p.name[len(a.stem) + 1 : len(p.name) - len(a.suffix)]
        if len(digits) == 12 and digits.isdigit():
            full.append((int(digits), p))
    out = [p for _, p in sorted(full)]
    if a.exists():
        out.append(a)
    return out


def _segment_first(path: Path, active: Path) -> int:
    """The first seq a segment's name promises (1 for a lone active segment)."""
    if path == active:
        return 0
    return int(path.name[len(active.stem) + 1 : len(path.name) - len(active.suffix)])


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The last line of ``path`` that is a JSON object, read from the end (complete lines
    only); None when there is none."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    want = _TAIL
    with open(path, "rb") as fh:
        while True:
            start = max(0, size - want)
            fh.seek(start)
            chunk = fh.read(size - start)
            lines = chunk.split(b"\n")
            lines.pop()  # after the last line end: empty, or a torn line
            if start > 0 and lines:
                lines.pop(0)  # may begin mid-line
            for raw in reversed(lines):
                entry = _parse(raw)
                if entry is not None:
                    return entry
            if start == 0:
                return None
            want *= 2


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class AuditLog:
    """Append to the hash-chained, segmented log (thread-safe)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        audit_key: bytes,
        *,
        wall: Callable[[], float] = time.time,
        segment_bytes: int = SEGMENT_BYTES,
        fsync: bool = True,
    ):
        """``fsync=False`` is for building large logs in benchmarks only."""
        self.path = Path(path)
        self._ckey = chain_key(audit_key)
        self._wall = wall
        self._lock = threading.Lock()
        self._seq: int = 0
        self._prev: str = GENESIS
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._size = 0
        self._fd = -1
        #: What was found wrong at open (issue 14): a head that does not verify.
        self.alarms: list[str] = []
        #: Where a damaged active segment was moved (``audit.log.bad-<UTC>``).
        self.put_aside: list[Path] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_active()
            torn, last = self._recover()
            damaged: list[tuple[int, str]] = []
            if last is not None and not self._verifies(last):
                self._set_aside(wall)
            else:
                damaged = self._check_active()
        except OSError as exc:
            raise SetupError(f"audit log {self.path}: {exc.strerror or exc}") from exc
        if torn:
            self.append("recovered", outcome=f"torn_bytes={torn}")
        if self.put_aside:
            self.append("recovered", outcome=f"put_aside={self.put_aside[0].name}")
        if damaged:
            self.alarms.append(
                f"audit log {self.path.name}: {len(damaged)} problem(s) found at start, the"
                f" first {damaged[0][1]}; the lines stay as they are (fieldterm audit verify"
                " lists them) and the chain goes on from its head"
            )
            at = ",".join(str(o) for o, _ in damaged[:_MAX_DAMAGED])
            self.append("recovered", outcome=f"{_DAMAGED}{at}")

    @property
    def head(self) -> AuditHead:
        with self._lock:  # the pair as one (a query may be sealed on another thread)
            return AuditHead(self._seq, self._prev)

    def query_head(self) -> tuple[int, bytes] | None:
        """The head as a query carries it to the regional, the outside anchor
        (``firmware.protocol.session.HEAD``); None for an empty log."""
        head = self.head
        return (head.seq, bytes.fromhex(head.mac)) if head.seq else None

    def mac_at(self, seq: int) -> str | None:
        """The chain MAC of line ``seq`` (None if the log has no such line). Reads the
        one segment that holds it, from its start (done once per anchor check)."""
        if seq < 1 or seq > self.head.seq:
            return None
        want = b'{"seq":%d,' % seq
        segs = segments(self.path)
        for p in reversed(segs):
            first = _segment_first(p, self.path)
            if first > seq:
                continue
            with open(p, "rb") as fh:
                for raw in fh:
                    if raw.startswith(want):
                        entry = _parse(raw)
                        if entry is not None and entry.get("seq") == seq:
                            mac = entry.get("mac")
                            return mac if isinstance(mac, str) else None
            if first:  # the full segment that should hold it does not
                return None
        return None

    def append(
        self,
        kind: str,
        *,
        query_id: bytes | None = None,
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
                "dkh": None,
                "outcome": outcome,
                "list_version": list_version,
                "prev": self._prev,
            }
            entry["mac"] = _mac(self._ckey, entry)
            line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
            try:
                if os.write(self._fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write (no space left)")
                if self._fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._undo_write()
                raise StorageError(f"audit log {self.path}: {exc.strerror or exc}") from exc
            self._seq, self._prev = entry["seq"], entry["mac"]
            self._size += len(line)
            if self._size >= self._segment_bytes:
                self._rotate()
            return entry

    # -- reading ------------------------------------------------------------------------------
    def unanswered(self) -> set[bytes]:
        """Query ids with an ``accepted`` line and no ``verdict`` line (streams every
        segment: only after the outbox was found missing or damaged)."""
        accepted: set[str] = set()
        for p in segments(self.path):
            with open(p, "rb") as fh:
                for raw in fh:
                    entry = _parse(raw)
                    qid = entry.get("qid") if entry else None
                    if not isinstance(qid, str) or entry is None:
                        continue
                    if entry.get("kind") == "accepted":
                        accepted.add(qid)
                    elif entry.get("kind") == "verdict":
                        accepted.discard(qid)
        return {bytes.fromhex(q) for q in accepted if _is_hex(q)}

    def last_accepted_seq(self) -> int:
        """The seq of the newest ``accepted`` line (0: none). Streams segments from the
        newest back, and stops at the first that holds one: a start reads one segment."""
        for p in reversed(segments(self.path)):
            last = 0
            with open(p, "rb") as fh:
                for raw in fh:
                    if _ACCEPTED not in raw:
                        continue
                    entry = _parse(raw)
                    if (
                        entry
                        and entry.get("kind") == "accepted"
                        and isinstance(entry.get("seq"), int)
                    ):
                        last = max(last, int(entry["seq"]))
            if last:
                return last
        return 0

    def verdicts_among(self, wanted: Mapping[bytes, int | None]) -> set[bytes]:
        """The query ids of ``wanted`` that have a ``verdict`` line. Each id maps to a seq
        its verdict can only come after (None: anywhere); only the segments that can hold
        such lines are streamed, one line at a time."""
        return self._qids_with(_VERDICT, wanted)

    def acknowledged_among(self, wanted: Mapping[bytes, int | None]) -> set[bytes]:
        """The query ids of ``wanted`` that have an ``acknowledged`` line (an offline hit
        the officer released: its query stays pending for the online re-check)."""
        return self._qids_with(_ACKNOWLEDGED, wanted)

    def _qids_with(self, mark: bytes, wanted: Mapping[bytes, int | None]) -> set[bytes]:
        if not wanted:
            return set()
        after = min((s if s is not None else 0) for s in wanted.values())
        hexes = {q.hex(): q for q in wanted}
        found: set[bytes] = set()
        for p in self._segments_after(after):
            with open(p, "rb") as fh:
                for raw in fh:
                    if mark not in raw:
                        continue
                    entry = _parse(raw)
                    qid = entry.get("qid") if entry else None
                    if isinstance(qid, str) and qid in hexes:
                        found.add(hexes[qid])
        return found

    def latched_matches(self) -> list[tuple[bytes, int | None]]:
        """POSSIBLE_MATCH verdicts not yet acknowledged, oldest first, with their scan
        numbers (None when the ``latched`` line is missing: a crash just after the
        verdict). Reads back to the last ``start`` line only (its list is the base)."""
        chunks: list[list[dict[str, Any]]] = []
        base: dict[str, int | None] = {}
        for p in reversed(segments(self.path)):
            rel: list[dict[str, Any]] = []
            with open(p, "rb") as fh:
                for raw in fh:
                    if any(m in raw for m in _LATCH_MARKS) or (_VERDICT in raw and _MATCH in raw):
                        entry = _parse(raw)
                        if entry is not None:
                            rel.append(entry)
            starts = [i for i, e in enumerate(rel) if e.get("kind") == "start"]
            if starts:
                base = parse_latched(rel[starts[-1]].get("outcome"))
                chunks.append(rel[starts[-1] + 1 :])
                break
            chunks.append(rel)
        latched = dict(base)
        for entry in (e for chunk in reversed(chunks) for e in chunk):
            qid, kind = entry.get("qid"), entry.get("kind")
            if not isinstance(qid, str) or not _is_hex(qid):
                continue
            if kind == "verdict":
                latched.setdefault(qid, None)
            elif kind == "latched" and qid in latched:
                latched[qid] = _scan_of(entry.get("outcome"))
            elif kind == "acknowledged":
                latched.pop(qid, None)
        return [(bytes.fromhex(q), scan) for q, scan in latched.items()]

    def has_verdict(self, query_id: bytes) -> bool:
        """True when a final verdict for this query is in the log (streams the whole log:
        for tools and tests; the agent asks :meth:`verdicts_among` once at start)."""
        return bool(self.verdicts_among({query_id: None}))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- segments ----------------------------------------------------------------------------
    def _open_active(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _segments_after(self, seq: int) -> list[Path]:
        """Segments that can hold lines with a seq above ``seq``."""
        segs = segments(self.path)
        firsts = [_segment_first(p, self.path) for p in segs]
        out = []
        for i, p in enumerate(segs):
            nxt = firsts[i + 1] if i + 1 < len(segs) and firsts[i + 1] else None
            if nxt is None or nxt - 1 > seq:
                out.append(p)
        return out

    def _rotate(self) -> None:
        """The active segment is full (lock held): rename it after its first line's seq,
        fsync the directory, start a new active segment."""
        with open(self.path, "rb") as fh:
            first = _parse(fh.readline())
        first_seq = int(first["seq"]) if first and isinstance(first.get("seq"), int) else 1
        target = segment_name(self.path, first_seq)
        try:
            os.close(self._fd)
            self._fd = -1
            os.rename(self.path, target)
            self._open_active()
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StorageError(f"audit log {self.path}: rotation: {exc.strerror or exc}") from exc

    def _recover(self) -> tuple[int, dict[str, Any] | None]:
        """Find the chain head from the end of the newest segment; cut a torn last line.
        Returns the torn byte count and the head's line (None: an empty log)."""
        self._seq, self._prev = 0, GENESIS
        torn = 0
        if self._size:
            with open(self.path, "rb") as fh:
                fh.seek(max(0, self._size - _TAIL))
                tail = fh.read()
            end = tail.rfind(b"\n")
            if end < 0 and self._size > len(tail):
                end = self._find_line_end()
            else:
                end = self._size - len(tail) + end
            torn = self._size - (end + 1)
            if torn:
                os.ftruncate(self._fd, end + 1)
                os.fsync(self._fd)
                self._size = end + 1
        for p in reversed(segments(self.path)):
            entry = _last_entry(p)
            if entry is not None:
                self._seq = int(entry.get("seq", 0)) if isinstance(entry.get("seq"), int) else 0
                self._prev = str(entry.get("mac", GENESIS))
                return torn, entry
        return torn, None

    def _check_active(self) -> list[tuple[int, str]]:
        """The active segment verified whole at open (at most ``segment_bytes``: an HMAC
        per line, about 60 ms a MB here): a line damaged in the middle of it is found now,
        not only by ``fieldterm audit verify``. Returns the new problems with the byte
        offset of their line; lines named by a ``recovered damaged_at=<offsets>`` line were
        reported at an earlier start and are not raised again (damage elsewhere is: offsets
        stay put when bytes are overwritten, unlike line numbers)."""
        chain = _Chain(b"", ckey=self._ckey)
        known: set[int] = set()
        found: list[tuple[int, str]] = []
        offset = 0
        with open(self.path, "rb") as fh:
            for n, raw in enumerate(fh, start=1):
                if n == 1:  # the segment goes on from the one before it
                    entry = _parse(raw)
                    if entry is not None and isinstance(entry.get("seq"), int):
                        chain.prev, chain.seq = str(entry.get("prev")), entry["seq"] - 1
                before = len(chain.rep.problems)
                chain.feed(raw, f"line {n}")
                found += [(offset, p) for p in chain.rep.problems[before:]]
                if _DAMAGED.encode() in raw and b'"kind":"recovered"' in raw:
                    outcome = (_parse(raw) or {}).get("outcome")
                    for o in str(outcome).removeprefix(_DAMAGED).split(","):
                        if o.isdigit():
                            known.add(int(o))
                offset += len(raw)
        return [(o, p) for o, p in found if o not in known]

    def _undo_write(self) -> None:
        """A failed append leaves no partial or unsynced line behind: the next append
        must follow the last line that is known durable, or the chain would fork."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # the torn tail is cut at the next start, with a ``recovered`` line

    def _verifies(self, entry: dict[str, Any]) -> bool:
        """Whether a line's MAC is right under this key (a log replaced by one written
        with another key, or a garbled last line, fails)."""
        mac = entry.get("mac")
        return isinstance(mac, str) and hmac.compare_digest(mac, _mac(self._ckey, entry))

    def _set_aside(self, wall: Callable[[], float]) -> None:
        """The active segment's head does not verify: move it aside and start a new chain
        (its first line is a ``recovered`` line naming the file put aside)."""
        os.close(self._fd)
        self._fd = -1
        moved = put_aside(self.path, wall)
        self._open_active()
        if moved is not None:
            self.put_aside.append(moved)
            self.alarms.append(
                f"audit log {self.path.name}: its last line (seq {self._seq}) does not verify "
                f"(replaced, or written with another key); put aside as {moved.name}"
            )
        self._seq, self._prev = 0, GENESIS

    def _find_line_end(self) -> int:
        """The offset of the active segment's last line end (-1 if none): a slow path for
        a torn tail longer than the first read."""
        pos = -1
        with open(self.path, "rb") as fh:
            offset = 0
            for raw in fh:
                offset += len(raw)
                if raw.endswith(b"\n"):
                    pos = offset - 1
        return pos


@dataclass
class VerifyReport:
    """The result of :func:`verify`: ``ok`` and the problems found, each naming a line."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)
    head: AuditHead | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: How many segment files :func:`verify_file` read.
    segments: int = 1

    @property
    def ok(self) -> bool:
        return not self.problems


class _Chain:
    """The running check of :func:`verify`: fed one line at a time (constant memory)."""

    def __init__(self, audit_key: bytes, *, ckey: bytes | None = None) -> None:
        self.ckey = ckey if ckey is not None else chain_key(audit_key)
        self.rep = VerifyReport()
        self.prev, self.seq = GENESIS, 0

    def feed(self, raw: bytes, where: str) -> None:
        rep = self.rep
        if not raw.endswith(b"\n"):
            rep.problems.append(f"{where}: torn (no line end)")
        entry = _parse(raw)
        if entry is None:
            rep.problems.append(f"{where}: not a JSON object")
            return
        rep.entries += 1
        kind = str(entry.get("kind"))
        rep.counts[kind] = rep.counts.get(kind, 0) + 1
        mac = entry.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(self.ckey, entry)):
            rep.problems.append(f"{where}: MAC mismatch (line edited or wrong key)")
        if entry.get("prev") != self.prev:
            rep.problems.append(
                f"{where}: chain broken (a line before it was removed, inserted or reordered)"
            )
        if entry.get("seq") != self.seq + 1:
            rep.problems.append(f"{where}: sequence {entry.get('seq')}, expected {self.seq + 1}")
        self.prev = str(mac)
        self.seq = int(entry["seq"]) if isinstance(entry.get("seq"), int) else self.seq + 1

    def end(self, expect_head: AuditHead | None) -> VerifyReport:
        rep = self.rep
        rep.head = AuditHead(self.seq, self.prev)
        if expect_head is not None and (self.seq, self.prev) != (expect_head.seq, expect_head.mac):
            rep.problems.append(
                f"end: head is seq {self.seq}, expected seq {expect_head.seq} "
                "(the log was cut or rolled back)"
            )
        return rep


def verify(
    lines: Iterable[bytes], audit_key: bytes, *, expect_head: AuditHead | None = None
) -> VerifyReport:
    """Check every line's MAC, sequence and link to the previous line."""
    chain = _Chain(audit_key)
    for n, raw in enumerate(lines, start=1):
        chain.feed(raw, f"line {n}")
    return chain.end(expect_head)


def verify_file(
    path: str | os.PathLike[str],
    audit_key: bytes,
    *,
    expect_head: AuditHead | None = None,
    all_segments: bool = True,
) -> VerifyReport:
    """:func:`verify` on a log file, streamed. ``path`` is the active segment: the full
    segments beside it (:func:`segments`) are checked first, in order, as one chain
    (``all_segments=False``: that one file alone). Problems name the line within the log
    and, with several segments, the file. A segment whose name does not match its first
    line is reported too (renamed or swapped)."""
    active = Path(path)
    files = segments(active) if all_segments else [active]
    if not files or (all_segments and not active.exists()):
        files = files or [active]
    chain = _Chain(audit_key)
    rep = chain.rep
    rep.segments = len(files)
    n = 0
    try:
        for f in files:
            promised = _segment_first(f, active) if all_segments else 0
            label = f"{f.name} " if len(files) > 1 else ""
            with open(f, "rb") as fh:
                for i, raw in enumerate(fh):
                    n += 1
                    if i == 0 and promised and promised != chain.seq + 1:
                        rep.problems.append(
                            f"{label}line {n}: segment named for seq {promised}, "
                            f"expected {chain.seq + 1} (a segment was removed or renamed)"
                        )
                    chain.feed(raw, f"{label}line {n}")
    except OSError as exc:
        raise SetupError(f"audit log {path}: {exc.strerror or exc}") from exc
    return chain.end(expect_head)
