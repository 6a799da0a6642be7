"""The site key ring: the ``lane.key`` file a site's kiosks and panels hold.

A site key is rotated with the site's kiosks and panels (``fieldterm provision
rotate-site-key``, docs/annunciator.md "Rotating the site key") without leaving a lane
dark: for a while every device *accepts* two keys, the previous and the current one,
while it *seals* with the one ``send`` names. The file::

    # fieldterm site key ring, site post-1
    send 2
    key 1 <64 hex characters>
    key 2 <64 hex characters>

Keys are listed oldest first; at most two. Every listed key opens frames (by the key id
in the frame's header); ``send`` names the key this device seals with. A device re-reads
the file while it runs (:class:`KeyFile`), so copying a new file onto it is all a step of
the rollover needs. The MicroPython twin of the parser is
``firmware/annunciator/frames.py`` (``ring_from_text``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .frames import MAX_KEY_ID, SiteKeys

log = logging.getLogger(__name__)

MAX_KEYS = 2


@dataclass(frozen=True)
class RawRing:
    """The file's content before key derivation (what provisioning stores and writes)."""

    send: int
    keys: tuple[tuple[int, bytes], ...]  # (id, 32-byte key), oldest first

    def ids(self) -> tuple[int, ...]:
        return tuple(i for i, _ in self.keys)


def parse_ring(text: str, source: str = "lane.key") -> RawRing:
    """Parse a key ring file; :class:`ValueError` names the file and the line."""
    send: int | None = None
    keys: list[tuple[int, bytes]] = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        where = f"{source} line {n}"
        if words[0] == "send" and len(words) == 2 and send is None:
            send = _key_id(words[1], where)
        elif words[0] == "key" and len(words) == 3:
            kid = _key_id(words[1], where)
            try:
                raw = bytes.fromhex(words[2])
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"{where}: the key must be 64 hex characters")
            if kid in (i for i, _ in keys):
                raise ValueError(f"{where}: key id {kid} listed twice")
            keys.append((kid, raw))
        else:
            raise ValueError(f"{where}: expected 'send ID' (once) or 'key ID HEX'")
    if not keys or len(keys) > MAX_KEYS:
        raise ValueError(f"{source}: must list 1 to {MAX_KEYS} keys ('key ID HEX' lines)")
    if send is None or send not in (i for i, _ in keys):
        raise ValueError(f"{source}: 'send ID' must name one of the listed keys")
    return RawRing(send, tuple(keys))


def _key_id(word: str, where: str) -> int:
    if not word.isdigit() or not 1 <= int(word) <= MAX_KEY_ID:
        raise ValueError(f"{where}: key id {word!r} must be a number from 1 to {MAX_KEY_ID}")
    return int(word)


def render_ring(ring: RawRing, site: str) -> str:
    """The file for ``ring`` (the inverse of :func:`parse_ring`)."""
    lines = [
        f"# fieldterm site key ring, site {site} (docs/annunciator.md): every key listed",
        "# opens lane and ack frames; 'send' names the one this device seals with",
        f"send {ring.send}",
        *(f"key {i} {raw.hex()}" for i, raw in ring.keys),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class KeyRing:
    """Derived keys of a ring: ``send`` seals, :meth:`get` opens by key id."""

    send: SiteKeys
    keys: tuple[SiteKeys, ...]

    @classmethod
    def from_raw(cls, raw: RawRing) -> KeyRing:
        keys = tuple(SiteKeys.derive(k, i) for i, k in raw.keys)
        return cls(next(k for k in keys if k.id == raw.send), keys)

    @classmethod
    def from_text(cls, text: str, source: str = "lane.key") -> KeyRing:
        return cls.from_raw(parse_ring(text, source))

    @classmethod
    def single(cls, keys: SiteKeys) -> KeyRing:
        return cls(keys, (keys,))

    def get(self, key_id: int) -> SiteKeys | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def describe(self) -> str:
        """``send=2 accept=1,2`` (ids only, never key material)."""
        return f"send={self.send.id} accept={','.join(str(k.id) for k in self.keys)}"


class KeyFile:
    """The ``lane.key`` file, re-read when its content changes (each :meth:`current` reads
    a few hundred bytes, so it can be called for every frame). A file that does not parse
    keeps the ring that was in force, with a warning: a half-copied file must not cut
    the lane off."""

    def __init__(self, path: Path):
        """Reads the file now: OSError or ValueError (naming the line) if it is bad."""
        self.path = path
        self._text = path.read_text()
        self._ring = KeyRing.from_text(self._text, str(path))

    def current(self) -> KeyRing:
        try:
            text = self.path.read_text()
        except OSError as exc:
            if self._text != "<unreadable>":
                log.warning("lane: cannot read %s (%s): keeping the key ring", self.path, exc)
                self._text = "<unreadable>"
            return self._ring
        if text != self._text:
            self._text = text
            try:
                ring = KeyRing.from_text(text, str(self.path))
            except ValueError as exc:
                log.warning("lane: %s: keeping the key ring in force", exc)
                return self._ring
            if ring != self._ring:
                log.info("lane: site key ring now %s", ring.describe())
            self._ring = ring
        return self._ring


def next_key_id(ids: Sequence[int]) -> int:
    """The id after the newest of ``ids`` (1..255, wrapping; a ring holds at most two, so
    ids only have to differ from the other one held)."""
    return ids[-1] % MAX_KEY_ID + 1
