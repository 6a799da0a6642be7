"""``fieldterm provision rotate-site-key``: a new site key without leaving a lane dark.

A site's kiosks and panels each *send* under one key and *accept* every key of their
ring (firmware/lane/keyring.py). The rollout has three steps; after each, the technician
copies the new ``lane.key`` onto every device of the site (kiosk: its bundle's file into
/etc/fieldterm; panel: ``mpremote cp``), in any order, before running the next step:

1. ``start``: a new key is added; every device still sends under the old one and now
   also accepts the new one.
2. ``--switch``: every device sends under the new key; the old one is still accepted,
   so a device that has not got this step's file yet is still understood.
3. ``--finish``: the old key is dropped; frames under it are refused (reason ``key``).

A lane stays lit throughout: at every moment each sender's key is in every receiver's
ring, provided each step has reached every device before the next. The tool writes the
file into each of the site's kiosk bundles and active panel directories it knows of
(names the ones that are gone) and updates their MANIFEST.sha256. A revoked panel gets
nothing: once the rotation finishes, its copy of the old key opens no frame.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import SetupError
from firmware.lane.keyring import RawRing, next_key_id

from . import annunciator
from .atomic import write_file
from .authority import RegionAuthority
from .bundle import MANIFEST, SECRET_MODE
from .registry import check_name
from .sitekey import LANE_KEY_FILE, read_ring, write_ring

STEPS = ("start", "switch", "finish")


def phase(ring: RawRing) -> str:
    """``steady`` (one key), ``staged`` (two, sending the older) or ``switched``."""
    if len(ring.keys) == 1:
        return "steady"
    return "staged" if ring.send == ring.keys[0][0] else "switched"


#: step -> the phase it needs, and what to do instead when the phase is another one
_NEEDS = {"start": "steady", "switch": "staged", "finish": "switched"}
_NEXT = {"steady": "run it without --switch/--finish to start a rotation",
         "staged": "run it with --switch next", "switched": "run it with --finish next"}  # fmt: skip


def advance(ring: RawRing, step: str) -> RawRing:
    """The ring after ``step``; :class:`SetupError` if the rollover is not at that step."""
    now = phase(ring)
    if _NEEDS[step] != now:
        held = " and ".join(str(i) for i in ring.ids())
        raise SetupError(
            f"rotate-site-key {step}: the site is {now} (keys {held}, sending under "
            f"{ring.send}): {_NEXT[now]}"
        )
    if step == "start":
        new = next_key_id(ring.ids())
        return RawRing(ring.send, (*ring.keys, (new, os.urandom(32))))
    if step == "switch":
        return RawRing(ring.keys[1][0], ring.keys)
    return RawRing(ring.send, ring.keys[1:])


@dataclass(frozen=True)
class Rollout:
    """What a step did: the ring now in force, the directories written, those gone."""

    site: str
    step: str
    ring: RawRing
    written: tuple[Path, ...]
    missing: tuple[str, ...]

    def report(self) -> list[str]:
        ids = ",".join(str(i) for i in self.ring.ids())
        what = {
            "start": f"new key {self.ring.ids()[-1]} staged: devices accept {ids}, "
            f"still send under {self.ring.send}",
            "switch": f"devices send under key {self.ring.send} and accept {ids}",
            "finish": f"rotation finished: only key {self.ring.send} is accepted",
        }[self.step]
        lines = [f"site {self.site}: {what}"]
        lines += [f"  wrote {p / LANE_KEY_FILE}" for p in self.written]
        lines += [f"  not written (directory gone): {m}" for m in self.missing]
        if self.step != "finish":
            nxt = "--switch" if self.step == "start" else "--finish"
            lines.append(
                f"copy lane.key onto every kiosk and panel of {self.site}, then run "
                f"rotate-site-key --site {self.site} {nxt}"
            )
        else:
            lines.append(f"copy lane.key onto every kiosk and panel of {self.site}")
        return lines


def _device_dirs(region: RegionAuthority, site: str) -> list[tuple[str, str | None]]:
    """(who, directory) of the site's active kiosks and panels."""
    out: list[tuple[str, str | None]] = [
        (f"kiosk {t.id}", t.bundle_path)
        for t in region.reg.terminals()
        if t.site == site and not t.revoked
    ]
    out += [
        (f"panel {p.id}", p.dir)
        for p in annunciator.panels(region)
        if p.site == site and not p.revoked
    ]
    return out


def replace_file(directory: Path, name: str, content: bytes) -> None:
    """Write ``name`` (a secret) into a written bundle or panel directory, keeping its
    MANIFEST.sha256 true (the first-boot script checks it before installing)."""
    write_file(directory / name, content, SECRET_MODE)
    manifest = directory / MANIFEST
    if manifest.exists():
        digest = hashlib.sha256(content).hexdigest()
        lines = [
            f"{digest}  {name}" if line.endswith(f"  {name}") else line
            for line in manifest.read_text().splitlines()
        ]
        write_file(manifest, "\n".join(lines) + "\n", 0o644)


def rotate_site_key(region: RegionAuthority, site: str, step: str) -> Rollout:
    """Advance ``site``'s key rotation by ``step`` and write the ring into its devices."""
    check_name(site, "--site")
    ring = read_ring(region.reg, site)
    if ring is None:
        raise SetupError(f"--site {site}: no kiosk or panel of that site has a key yet")
    new = advance(ring, step)
    content = write_ring(region.reg, site, new)
    written, missing = [], []
    for who, d in _device_dirs(region, site):
        if d and Path(d).is_dir():
            replace_file(Path(d), LANE_KEY_FILE, content)
            written.append(Path(d))
        else:
            missing.append(f"{who} ({d or 'no directory recorded'})")
    return Rollout(site, step, new, tuple(written), tuple(missing))
