"""``add-terminals``: many terminals at once, each with the bundle ``add-terminal`` makes.

Terminals are made in batches. A batch is one registry transaction: its rows,
certificates and identity keys are inserted, its bundles are written into a staging
directory inside ``--out`` (no ``fsync`` per file: one ``sync`` per batch makes them all
durable), renamed into ``DIR/<id>``, and only then is the transaction committed. A failure
anywhere in a batch rolls the transaction back and removes the bundles of that batch
already renamed, so the registry and ``DIR`` hold nothing of it; batches committed before
stay, and the error says how many.

The cost per terminal (P-256 key, certificate, Ed25519 key, about ten small files) is
below a millisecond of CPU, so one process is enough: ``fieldterm bench provision``
measures it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import SetupError

from .atomic import _fsync_dir, check_writable
from .authority import RegionAuthority, TerminalOptions
from .bundle import fill_dir

#: Terminals per registry transaction (``--batch-size``).
BATCH_SIZE = 1000


def terminal_ids(prefix: str, count: int, start: int = 1, digits: int = 5) -> list[str]:
    """``prefix`` + a zero-padded number: ``kiosk-`` -> kiosk-00001, kiosk-00002, ..."""
    if count < 1:
        raise SetupError(f"--count {count}: give 1 or more terminals")
    if start < 0:
        raise SetupError(f"--start {start}: give 0 or more")
    width = max(digits, len(str(start + count - 1)))
    return [f"{prefix}{n:0{width}d}" for n in range(start, start + count)]


@dataclass(frozen=True)
class BulkResult:
    out: Path
    ids: tuple[str, ...]
    batches: int


def add_terminals(
    region: RegionAuthority,
    ids: Sequence[str],
    out: Path,
    opts: TerminalOptions,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
) -> BulkResult:
    """Enrol ``ids`` with bundles in ``out/<id>``; see the module docstring.
    ``progress(n)`` hears each terminal made (``n`` = 1) as it is staged."""
    if batch_size < 1:
        raise SetupError(f"--batch-size {batch_size}: give 1 or more")
    out = Path(out).absolute()
    seen: set[str] = set()
    for i, tid in enumerate(ids):  # every refusal before anything is made
        if tid in seen:
            raise SetupError(f"terminal id {tid!r} appears twice (position {i + 1})")
        seen.add(tid)
        region.check_new_terminal(tid, opts)
        if (out / tid).exists():
            raise SetupError(
                f"{out / tid} already exists: choose another --out or --prefix/--start, or "
                "remove that directory"
            )
    region.issuer()  # a wrong passphrase or an expired CA fails here, before any batch
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create {out}: {exc.strerror}: pick a writable --out") from exc
    check_writable(out, "--out")
    done = 0
    batches = 0
    for b0 in range(0, len(ids), batch_size):
        batch = ids[b0 : b0 + batch_size]
        try:
            _one_batch(region, batch, out, opts, progress)
        except (SetupError, OSError) as exc:
            why = f"writing {out}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            kept = (
                f"the {done} terminal(s) of the {batches} batch(es) before it are in the "
                "registry and their bundles in place; "
                if done
                else ""
            )
            raise SetupError(
                f"{why}: {kept}nothing of the batch from {batch[0]} was kept; fix the cause "
                f"and make the terminals from {batch[0]} on again"
            ) from exc
        done += len(batch)
        batches += 1
    return BulkResult(out, tuple(ids), batches)


def _one_batch(
    region: RegionAuthority,
    batch: Sequence[str],
    out: Path,
    opts: TerminalOptions,
    progress: Callable[[int], object] | None,
) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".add-terminals.", suffix=".tmp", dir=out))
    placed: list[Path] = []
    try:
        with region.reg.transaction():
            for tid in batch:
                bundle = region.enrol(tid, opts)
                d = staging / tid
                d.mkdir(mode=0o700)
                fill_dir(bundle, d)
                region.reg.set_bundle_path(tid, str(out / tid))
                if progress is not None:
                    progress(1)
            os.sync()  # every staged file on disk before any bundle appears under out/
            for tid in batch:
                os.rename(staging / tid, out / tid)
                placed.append(out / tid)
            _fsync_dir(out)
    except BaseException:
        for p in placed:
            shutil.rmtree(p, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
