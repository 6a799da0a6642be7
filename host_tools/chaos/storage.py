"""Storage faults on the kiosk's state directory: power cut, full card, damaged files.

- ``power-cut``: the state directory is a :mod:`host_tools.chaos.lazyfs` mount, which
  keeps unsynced writes in memory only. At the cut the agent is SIGKILLed and everything
  unsynced is dropped at the same instant; the file system is remounted from what
  survived and the agent restarted on it. The audit log's head before and after the cut
  is recorded, so the oracle can state where the cut truncated it.
- ``disk-full``: the state directory is a size-limited tmpfs, filled to the last byte
  while scans flow, then freed. The officer must see the storage-full state (a refusal,
  never CLEAR), the agent must not exit, and it must accept scans again once space is
  back (``storage_ok``, timed as the recovery).
- ``corrupt-files``: between two runs of the agent (SIGKILLed mid-flow) the outbox or the
  audit log, and the offline list, are truncated or garbled. The agent must start, put
  each bad file aside as ``<name>.bad-<UTC>``, raise an alarm, and lose no pending scan
  that survives elsewhere (a scan named lost by the agent's own alarm is *accounted*).
  An alarm is due for audit-log damage (unless only lines an earlier run damaged were
  hit) and for outbox damage SQLite's own ``integrity_check`` sees.

- ``regional-stores``: the regional SIGKILLed under load, then its replay store or its
  audit trail (alternately, run by run) truncated or garbled, and the regional restarted
  on it. Where SQLite's own ``PRAGMA integrity_check`` (on a copy taken before the
  restart) finds the damage, the regional must put the file aside and name it in its
  health's ``alarms``; damage SQLite cannot see (pages the WAL still holds) must still
  leave it answering. Verdicts whose audit rows went aside with the file are reported
  ``unverified``, never counted right.

Each scenario's ``setup`` restarts the agent on its special directory and ``teardown``
puts the ordinary one back (an orderly stop, so nothing is lost there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.chaos.ctx import Ctx, Fault
from host_tools.chaos.lazyfs import LazyFS
from host_tools.localregion.runner import fieldterm_argv

FILL_CHUNK = 1 << 20


# -- the audit log, read with the product's own verifier -------------------------------------
@dataclass
class AuditReport:
    """What ``fieldterm audit verify --json`` said about one log."""

    entries: int
    head_seq: int
    problems: list[str]


def verify_audit(ctx: Ctx, directory: Path | None = None) -> AuditReport:
    """The product's verify (``fieldterm audit verify``, every segment) on the agent's audit
    log, run as a command: host tools never import the kiosk's agent package."""
    log = (directory or ctx.state_dir) / "audit.log"
    toml = ctx.region.terminal_toml(ctx.tid)
    out = subprocess.run(
        fieldterm_argv("audit", "verify", "--config", str(toml), "--log", str(log), "--json"),
        capture_output=True, text=True, timeout=60, cwd=ctx.state_dir.parent, check=False,
    )  # fmt: skip
    try:
        rep = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return AuditReport(0, 0, [f"audit verify failed (exit {out.returncode}): "
                                  f"{out.stderr.strip()[-300:]}"])  # fmt: skip
    head = rep.get("head") or {}
    return AuditReport(int(rep["entries"]), int(head.get("seq") or 0), list(rep["problems"]))


# -- power cut -------------------------------------------------------------------------------
def _backing(ctx: Ctx) -> Path:
    return ctx.state_dir.with_name("state.disk")


def power_setup(ctx: Ctx) -> None:
    ctx.stop_agent()
    state, backing = ctx.state_dir, _backing(ctx)
    if backing.exists():
        shutil.rmtree(backing)
    state.rename(backing)
    state.mkdir()
    ctx.fs = LazyFS(backing, state).mount()
    ctx.restart_agent(wait=True)


def power_teardown(ctx: Ctx) -> None:
    try:
        ctx.stop_agent()
    finally:  # never leave the mount (and its daemon) behind, whatever failed
        fs: LazyFS | None = ctx.fs
        ctx.fs = None
        if fs is not None:
            try:
                fs.sync_unmount()
            finally:
                fs.unmount()  # idempotent: nothing left to do after a clean sync_unmount
    state, backing = ctx.state_dir, _backing(ctx)
    if backing.exists():
        if state.exists():
            state.rmdir()
        backing.rename(state)
    ctx.restart_agent(wait=True)


def power_cut(ctx: Ctx) -> Fault:
    fs: LazyFS = ctx.fs
    before = verify_audit(ctx).head_seq
    ctx.kill_agent()
    reply = fs.cut()  # nothing ran between the kill and the cut: one instant
    after_rep = verify_audit(ctx, fs.backing)
    after = after_rep.head_seq
    ctx.note(f"power cut: agent SIGKILLed, unsynced writes dropped ({reply})")
    if after < before:
        ctx.audit_notes.append(
            f"power cut truncated the agent audit log at seq {after} (seq {before} had been "
            f"written, {before - after} line(s) never synced)"
        )
    elif after_rep.problems:
        ctx.audit_notes.append(f"after the cut, before restart: {after_rep.problems[:2]}")
    else:
        ctx.audit_notes.append(f"power cut: audit log whole to seq {after}")
    off = ctx.rng.uniform(0.0, 1.0)
    ctx.param(f"power off {off:.1f} s")
    yield off
    ctx.fs = LazyFS(fs.backing, fs.mountpoint).mount()
    ctx.restart_agent()
    ctx.note("remounted from what survived; agent restarted")


# -- disk full -------------------------------------------------------------------------------
def _state_saved(ctx: Ctx) -> Path:
    return ctx.state_dir.with_name("state.saved")


def _move_contents(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.name == "lost+found":
            continue
        target = dst / child.name
        if child.is_dir():
            shutil.copytree(child, target, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(child)
        else:
            shutil.copy2(child, target)
            child.unlink()


def _du(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def full_setup(ctx: Ctx) -> None:
    ctx.stop_agent()
    state, saved = ctx.state_dir, _state_saved(ctx)
    _move_contents(state, saved)
    size = _du(saved) + (24 << 20)  # what it holds, room to work, and a reserve to fill
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(state)], check=True, capture_output=True)  # fmt: skip
    _move_contents(saved, state)
    ctx.restart_agent(wait=True)


def full_teardown(ctx: Ctx) -> None:
    ctx.stop_agent()
    state, saved = ctx.state_dir, _state_saved(ctx)
    with contextlib.suppress(FileNotFoundError):
        (state / "chaos-fill").unlink()
    _move_contents(state, saved)
    subprocess.run(["umount", str(state)], check=True, capture_output=True)
    _move_contents(saved, state)
    saved.rmdir()
    ctx.restart_agent(wait=True)


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full (bounded); the bytes written."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(4096):  # at most 4 GB: a tmpfs limit is far below
            try:
                n += os.write(fd, bytes(FILL_CHUNK))
            except OSError:
                break
        for size in (65536, 4096, 512, 1):  # the last blocks
            with contextlib.suppress(OSError):
                while True:
                    n += os.write(fd, bytes(size))
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return n


def disk_full(ctx: Ctx) -> Fault:
    fill = ctx.state_dir / "chaos-fill"
    wrote = _fill(fill)
    free = os.statvfs(ctx.state_dir).f_bavail * os.statvfs(ctx.state_dir).f_frsize
    hold = ctx.seconds(20.0)
    ctx.param(f"tmpfs filled ({wrote / 1e6:.1f} MB, {free} bytes left) for {hold:.0f} s")
    ctx.expect["storage_full"] = True
    yield hold
    fill.unlink()
    ctx.recovered_at = time.monotonic()
    ctx.note("space returned")
    ctx.expect["storage_ok_after"] = ctx.agent.events.mark()


def full_verify(ctx: Ctx, events: list[dict[str, Any]]) -> list[str]:
    """The officer was told (event and screen); the kiosk took scans again once space was
    back (``storage_ok``, or the next scan accepted; the probe scan then proves it)."""
    unmet = []
    names = [e["event"] for e in events]
    if "storage_full" not in names:
        unmet.append("disk full: no storage_full event (the officer was not told)")
    shown = [e for e in events if e["event"] == "state" and e.get("after") == "storage_full"]
    if not shown:
        unmet.append("disk full: the storage-full screen was never shown")
    after = ctx.expect.get("storage_ok_after")
    back = [
        e["event"]
        for e in ctx.agent.events.events[after or 0 :]
        if e["event"] == "storage_ok" or (e["event"] == "document" and e.get("valid"))
    ]
    if after is None or not back:
        unmet.append("disk full: no scan accepted after space returned")
    else:
        ctx.audit_notes.append(f"disk full: way back by {back[0]}")
    return unmet


# -- corrupt files ---------------------------------------------------------------------------
def _garble(path: Path, rng: Any, span: list[int] | None = None) -> str:
    """Truncate ``path`` at a random byte or overwrite 16-600 bytes of it; what was done.
    ``span`` gets the byte range overwritten (a garble only)."""
    data = bytearray(path.read_bytes())
    if not data:
        return f"{path.name} was empty"
    if rng.random() < 0.5:
        cut = rng.randrange(0, len(data))
        path.write_bytes(bytes(data[:cut]))
        return f"{path.name} truncated {len(data)} -> {cut} bytes"
    n = min(len(data), rng.randrange(16, 600))
    at = rng.randrange(0, len(data) - n + 1)
    data[at : at + n] = rng.randbytes(n)
    path.write_bytes(bytes(data))
    if span is not None:
        span += [at, at + n]
    return f"{path.name} garbled: {n} bytes at {at} of {len(data)}"


def _lines_touched(data: bytes, start: int, end: int) -> set[int]:
    """The byte offsets where the lines of ``data`` overlapping ``[start, end)`` begin."""
    first = data.rfind(b"\n", 0, start) + 1
    out = {first}
    i = data.find(b"\n", first)
    while 0 <= i < end - 1 and i + 1 < len(data):
        out.add(i + 1)
        i = data.find(b"\n", i + 1)
    return out


def _offline_files(state: Path) -> list[Path]:
    root = state / "offline"
    return sorted(p for p in root.rglob("*") if p.is_file() and ".bad-" not in p.name)


def corrupt_files(ctx: Ctx) -> Fault:
    ctx.kill_agent()
    state = ctx.state_dir
    run = ctx.run_index
    first = ("outbox.sqlite", "audit.log")[run % 2]
    done = []
    before = (state / first).read_bytes() if (state / first).exists() else b""
    span: list[int] = []
    done.append(_garble(state / first, ctx.rng, span))
    if first == "audit.log" and span:
        # An alarm is due unless every line hit was damaged (and reported) by an earlier
        # run. What the agent can have reported: the lines hit, as they were and as the
        # garble left them (random bytes may hold new line ends), and the line after them
        # (its link to the damaged one breaks).
        touched = _lines_touched(before, *span)
        ctx.expect["audit_new_damage"] = bool(touched - ctx.audit_touched)
        after = (state / first).read_bytes()
        nxt = after.find(b"\n", span[1] - 1)  # the end of the last line hit
        ctx.audit_touched |= touched | _lines_touched(after, span[0], span[1])
        if 0 <= nxt < len(after) - 1:
            ctx.audit_touched.add(nxt + 1)
    if first == "outbox.sqlite":  # bytes the WAL covers are damage SQLite never reads
        seen = _sqlite_sees_damage(state / first)
        ctx.expect["outbox_seen"] = seen
        ctx.audit_notes.append(f"SQLite's integrity_check of the damaged outbox: {seen or 'ok'}")
    offline = _offline_files(state)
    if offline:
        done.append("offline/" + _garble(ctx.rng.choice(offline), ctx.rng))
    for d in done:
        ctx.param(d)
    ctx.expect["corrupted"] = first
    yield 0.2
    ctx.restart_agent()
    ctx.note("agent restarted on the damaged files")


def _sqlite_sees_damage(path: Path) -> str | None:
    """SQLite's full integrity check of ``path`` (with its WAL), on a copy: what it
    reports, or None when it finds nothing. Independent of the product's own check
    (:func:`firmware.quarantine.sqlite_damage`, a ``quick_check`` of the file in place)."""
    import sqlite3  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="chaos-sqlite-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        try:
            con = sqlite3.connect(copy)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            return str(exc)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:2])


def _damage_sqlite(path: Path, rng: Any) -> str:
    """Truncate the SQLite file at a page boundary, or overwrite the header of one of its
    pages past the first (where a b-tree page says what it holds); bytes at random
    offsets (:func:`_garble`) mostly land in slack space SQLite never reads."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big") if len(data) >= 100 else 0
    page = 65536 if size == 1 else size
    pages = len(data) // page if page else 0
    if pages < 2:
        return _garble(path, rng)
    if rng.random() < 0.5:
        cut = rng.randrange(1, pages) * page
        path.write_bytes(bytes(data[:cut]))
        return f"{path.name} truncated {len(data)} -> {cut} bytes ({cut // page} of {pages} pages)"
    k = rng.randrange(1, pages)
    n = rng.randrange(8, 64)
    data[k * page : k * page + n] = rng.randbytes(n)
    path.write_bytes(bytes(data))
    return f"{path.name} garbled: page {k + 1} of {pages}, its first {n} bytes"


def regional_stores(ctx: Ctx) -> Fault:
    """Every regional SIGKILLed; its replay store (even runs) or audit trail (odd runs)
    damaged with :func:`_damage_sqlite`; one regional started on it."""
    from host_tools.regional.config import RegionalConfig  # noqa: PLC0415

    cfg = RegionalConfig.load(ctx.region.regional_toml)
    live = [r for r in ctx.region.regionals if r.running()]
    for r in live:
        ctx.expected_exit.add(r.pid)
        r.kill()
    target = (cfg.replay_db, cfg.audit_db)[ctx.run_index % 2]
    ctx.param(f"regional SIGKILLed; {_damage_sqlite(target, ctx.rng)}")
    seen = _sqlite_sees_damage(target)
    ctx.expect["regional_store"] = target
    ctx.expect["sqlite_sees"] = seen
    verdict = seen or "ok (damage it cannot see)"
    ctx.audit_notes.append(f"SQLite's integrity_check of the damaged {target.name}: {verdict}")
    yield 0.2
    ctx.region.start_regional(env=ctx.regional_env, wait=False)
    ctx.note("regional restarted on the damaged store")


def regional_stores_verify(ctx: Ctx, events: list[dict[str, Any]]) -> list[str]:
    """A store SQLite finds damaged is put aside with an alarm in the regional's health;
    in any case a regional runs again (its answers are the run's recovery)."""
    target: Path = ctx.expect["regional_store"]
    live = [r for r in ctx.region.regionals if r.running()]
    if not live:
        return ["regional stores: no regional process runs after the restart"]
    alarms = [str(a) for a in live[-1].health().get("alarms", [])]
    aside = sorted(p.name for p in target.parent.glob(target.name + ".bad-*"))
    ctx.audit_notes.append(f"regional alarms: {alarms}; put aside so far: {aside[-2:]}")
    if ctx.expect["sqlite_sees"] is None:
        return []
    unmet = []
    if not any(target.name in a for a in alarms):
        unmet.append(f"regional stores: {target.name} damaged and no alarm in the health")
    if not aside:
        unmet.append(f"regional stores: {target.name} damaged and not put aside")
    return unmet


def wal_lost(ctx: Ctx) -> Fault:
    """The outbox's WAL and shm files lost between runs (a card that dropped them): the
    commits since the last checkpoint go with them."""
    ctx.kill_agent()
    state = ctx.state_dir
    gone = []
    for side in ("outbox.sqlite-wal", "outbox.sqlite-shm"):
        p = state / side
        if p.exists():
            gone.append(f"{side} ({p.stat().st_size} bytes)")
            p.unlink()
    ctx.param("lost " + (", ".join(gone) or "nothing: no WAL on disk"))
    yield 0.2
    ctx.restart_agent()
    ctx.note("agent restarted without its outbox WAL")


def wal_verify(ctx: Ctx, events: list[dict[str, Any]]) -> list[str]:
    """A WAL that held commits went missing: the agent must say so (an alarm), never
    carry on silently with the rolled-back outbox."""
    held = any("outbox.sqlite-wal (" in p and "(0 bytes)" not in p for p in ctx.params)
    alarms = [e for e in events if e["event"] == "alarm" and "outbox" in str(e.get("message"))]
    if held and not alarms:
        return ["wal lost: the outbox's WAL (with commits) vanished and no alarm was raised"]
    return []


def corrupt_verify(ctx: Ctx, events: list[dict[str, Any]]) -> list[str]:
    unmet = []
    starts = [e for e in events if e["event"] == "start"]
    if not starts:
        unmet.append("corrupt files: the agent never started again")
    alarms = [e for e in events if e["event"] == "alarm"]
    bad = sorted(p.name for p in ctx.state_dir.rglob("*.bad-*"))
    ctx.audit_notes.append(f"files put aside so far: {bad[-4:]}; alarms this run: {len(alarms)}")
    # the audit log: a cut loses lines (the anchor), bytes overwritten break a line's MAC
    # (unless only lines damaged by an earlier run were hit); the outbox: what SQLite's own
    # check sees
    damaged = (
        any(p.startswith("audit.log ") and "truncated" in p for p in ctx.params)
        or ctx.expect.get("audit_new_damage", False)
        or ctx.expect.get("outbox_seen") is not None
    )
    if damaged and not alarms:
        unmet.append("corrupt files: damaged files but no alarm was raised")
    return unmet


def accounted(lost_qids: dict[int, str], events: list[dict[str, Any]]) -> set[int]:
    """Lost scans the agent itself named in an alarm (by query id prefix, or all of them
    when its count covers them): reported to the officer, not silently lost."""
    alarms = [str(e.get("message", "")) for e in events if e["event"] == "alarm"]
    out = {s for s, q in lost_qids.items() if q and any(q[:12] in a for a in alarms)}
    for a in alarms:
        if "accepted scans have neither a verdict nor an outbox row" in a:
            with contextlib.suppress(ValueError):
                if int(a.split()[0]) >= len(lost_qids):
                    out |= set(lost_qids)
    return out
