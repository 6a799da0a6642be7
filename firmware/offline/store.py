"""The kiosk's offline-list store: the installed list, downloads, and the atomic swap.

Layout under the store's root (the agent's ``<state_dir>/offline``)::

    CURRENT                 the name of the installed list directory (one line)
    lists/<name>/           a list directory (firmware.offline.listdir); <name> is
                            v<version> for a full list, v<base>-d<version> with a delta
    incoming/<kind>-v<N>/   a download: manifest.json (verified before the first chunk)
                            and chunks/<index>, each written to a temporary name, fsynced
                            and renamed, so a chunk present is a whole chunk

A new list is used only once complete and verified: its directory is written and fsynced
under a temporary name, verified, renamed into ``lists/``, and then ``CURRENT`` is replaced
(write, fsync, rename, fsync the directory). A power cut at any instant leaves ``CURRENT``
naming the old list or the new one, and each is whole. A download resumes after a restart
from the chunks already on disk; chunks whose hash no longer holds are fetched again.

Refusals (:mod:`firmware.offline.errors`): bad signature, another region, another
offline-list key, a version not newer than the installed one (rollback), a delta for
another base, a chunk whose SHA-256 differs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.offline import listdir
from firmware.offline.errors import (
    ListBaseError,
    ListChunkError,
    ListIncompleteError,
    ListRollbackError,
    OfflineListError,
)
from firmware.offline.listdir import OfflineList, open_list
from firmware.offline.manifest import Manifest, verify_manifest
from firmware.quarantine import bad_name, fsync_dir

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
FLOOR = "FLOOR"


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary name: write, fsync, rename (no dir fsync)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def list_name(m: Manifest) -> str:
    return f"v{m.version}" if m.kind == "full" else f"v{m.base_version}-d{m.version}"


class OfflineStore:
    """The offline lists of one kiosk. Readers call :meth:`current`; one writer (the
    agent's downloader) calls :meth:`recover` once, then :meth:`begin` per new manifest."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        region: str,
        sign_public: Ed25519PublicKey,
        key_id: bytes,
    ):
        self.root = Path(root)
        self.region = region
        self.sign_public = sign_public
        self.key_id = key_id
        self.lists = self.root / "lists"
        self.incoming = self.root / "incoming"
        #: What :meth:`recover` found wrong (an installed list that fails verification).
        self.alarms: list[str] = []
        self._checked: tuple[str, OfflineList] | None = None

    # -- reading -------------------------------------------------------------------------
    def current_name(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return name or None

    def current(self) -> OfflineList:
        """The installed list, verified as a whole; :class:`OfflineListError` if there is
        none or it fails verification (the caller then answers UNKNOWN)."""
        name = self.current_name()
        if name is None:
            raise ListIncompleteError("no offline list installed", reason="none")
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] == name:
            return checked[1]  # verified by recover() a moment ago: not twice per start
        if checked is not None:
            checked[1].close()
        return open_list(self.lists / name, self.sign_public, self.region, self.key_id)

    def current_manifests(self) -> tuple[Manifest, Manifest] | None:
        """``(full, effective)`` manifests of the installed list, signatures checked but not
        the payload (cheap; for rollback decisions and status)."""
        name = self.current_name()
        if name is None:
            return None
        d = self.lists / name
        full = listdir.read_manifest(d / listdir.MANIFEST, self.sign_public, self.region)
        if (d / listdir.DELTA_MANIFEST).exists():
            dm = listdir.read_manifest(d / listdir.DELTA_MANIFEST, self.sign_public, self.region)
            return full, dm
        return full, full

    def held_version(self) -> int:
        """Version of the installed list (its delta's, if any); 0 if none or unreadable."""
        try:
            held = self.current_manifests()
        except OfflineListError:
            return 0
        return 0 if held is None else held[1].version

    # -- writing -------------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: drop list directories that ``CURRENT`` does not name (a swap
        cut short) and downloads no newer than the installed list."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f".{CURRENT}.tmp").unlink(missing_ok=True)
        self._quarantine_current()
        keep = self.current_name()
        if self.lists.is_dir():
            for p in self.lists.iterdir():
                if p.name != keep:
                    shutil.rmtree(p, ignore_errors=True)
        held = self.held_version()
        if self.incoming.is_dir():
            for p in self.incoming.iterdir():
                version = p.name.rpartition("-v")[2]
                if not version.isdigit() or int(version) <= held:
                    shutil.rmtree(p, ignore_errors=True)

    def begin(self, manifest_bytes: bytes) -> Download:
        """Start (or resume) the download of the list ``manifest_bytes`` describes.
        Refused before any chunk is fetched if the manifest fails its checks."""
        m = verify_manifest(self.sign_public, manifest_bytes, self.region)
        m.check_key(self.key_id)
        try:
            held = self.current_manifests()
        except OfflineListError as exc:
            # an installed list whose manifest no longer verifies must not block a new one
            log.warning("installed offline list unreadable (%s); accepting a new one", exc.reason)
            held = None
        held_version = max(0 if held is None else held[1].version, self._floor())
        if m.version <= held_version:
            raise ListRollbackError(
                f"list {m.version} is not newer than the installed list {held_version}"
            )
        if m.kind == "delta":
            if held is None or held[0].version != m.base_version:
                have = "none" if held is None else str(held[0].version)
                raise ListBaseError(
                    f"delta {m.version} applies to full list {m.base_version}; installed: {have}"
                )
        return Download(self, m, manifest_bytes)

    def _quarantine_current(self) -> None:
        """An installed list that fails verification (issue 14: cut, corrupted) is moved
        aside to ``<root>/<name>.bad-<UTC>`` and ``CURRENT`` removed, with an alarm; a new
        list is then accepted, but never one older than the version it held (``FLOOR``,
        from its manifest when that still verifies), so the damage opens no rollback."""
        name = self.current_name()
        if name is None:
            return
        try:
            self._checked = (name, self.current())
            return
        except OfflineListError as exc:
            problem = f"{exc.reason}: {exc}"
        try:
            held = self.current_manifests()
        except OfflineListError:
            held = None
        if held is not None and held[1].version > self._floor():
            write_durable(self.root / FLOOR, f"{held[1].version}\n".encode())
        target = bad_name(self.root / name)
        if (self.lists / name).exists():
            os.rename(self.lists / name, target)
        (self.root / CURRENT).unlink(missing_ok=True)
        fsync_dir(self.root)
        self.alarms.append(
            f"offline list {name} fails verification ({problem}); put aside as "
            f"{target.name}: offline answers are UNKNOWN until a new list arrives"
        )
        log.error("%s", self.alarms[-1])

    def _floor(self) -> int:
        """The version of a list put aside: no list at or below it is accepted."""
        try:
            return int((self.root / FLOOR).read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _swap(self, name: str) -> None:
        tmp = self.root / f".{CURRENT}.tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / CURRENT)
        fsync_dir(self.root)


class Download:
    """One list being fetched chunk by chunk; :meth:`install` once :meth:`missing` is empty."""

    def __init__(self, store: OfflineStore, manifest: Manifest, manifest_bytes: bytes):
        self.store = store
        self.manifest = manifest
        kind = manifest.kind
        self.dir = store.incoming / f"{kind}-v{manifest.version}"
        self.chunks = self.dir / "chunks"
        mpath = self.dir / "manifest.json"
        if mpath.exists() and mpath.read_bytes() != manifest_bytes:
            shutil.rmtree(self.dir)  # another build of this version: start over
        self.chunks.mkdir(parents=True, exist_ok=True)
        if not mpath.exists():
            write_durable(mpath, manifest_bytes)
            fsync_dir(self.dir)
        self.manifest_bytes = manifest_bytes

    def _chunk_path(self, index: int) -> Path:
        return self.chunks / f"{index:06d}"

    def missing(self) -> list[int]:
        """Indices of chunks not yet on disk (or whose bytes no longer verify)."""
        out = []
        for i in range(len(self.manifest.chunks)):
            p = self._chunk_path(i)
            try:
                self.manifest.check_chunk(i, p.read_bytes())
            except FileNotFoundError:
                out.append(i)
            except ListChunkError:
                p.unlink(missing_ok=True)
                out.append(i)
        return out

    def put(self, index: int, data: bytes) -> None:
        """Store one chunk after checking its SHA-256 (:class:`ListChunkError` if wrong)."""
        self.manifest.check_chunk(index, data)
        write_durable(self._chunk_path(index), data)

    def install(self) -> OfflineList:
        """Assemble, verify and swap the new list in; returns it, verified and mapped.
        :class:`ListIncompleteError` while chunks are missing; the old list stays in use
        on any failure."""
        missing = self.missing()
        if missing:
            raise ListIncompleteError(
                f"list {self.manifest.version}: {len(missing)} chunks missing"
            )
        store, m = self.store, self.manifest
        store.lists.mkdir(parents=True, exist_ok=True)
        name = list_name(m)
        staging = store.lists / f".{name}.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        if m.kind == "full":
            self._assemble(staging / listdir.FILTER)
            write_durable(staging / listdir.MANIFEST, self.manifest_bytes)
        else:
            base = store.lists / str(store.current_name())
            for f in (listdir.MANIFEST, listdir.FILTER):
                os.link(base / f, staging / f)  # the full list is shared, not copied
            self._assemble(staging / listdir.DELTA)
            write_durable(staging / listdir.DELTA_MANIFEST, self.manifest_bytes)
        fsync_dir(staging)
        try:
            open_list(staging, store.sign_public, store.region, store.key_id).close()
        except OfflineListError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        final = store.lists / name
        shutil.rmtree(final, ignore_errors=True)
        os.rename(staging, final)
        fsync_dir(store.lists)
        old = store.current_name()
        store._swap(name)
        log.info("offline list %d installed (%s)", m.version, name)
        if old and old != name:
            shutil.rmtree(store.lists / old, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        return store.current()

    def _assemble(self, path: Path) -> None:
        with open(path, "wb") as out:
            for i in range(len(self.manifest.chunks)):
                with open(self._chunk_path(i), "rb") as fh:
                    shutil.copyfileobj(fh, out)
            out.flush()
            os.fsync(out.fileno())
