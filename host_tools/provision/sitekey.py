"""The per-site key ring (docs/annunciator.md): the ``lane.key`` file shared by a site's
kiosks (in their bundle) and its annunciator panels. It seals the lane frames and the
panels' acknowledgements. The registry keeps the site's ring in ``site/<site>/lane.key``;
every device of the site gets a copy of it, and a rotation
(:mod:`.sitekey_rotation`) changes it in three steps.
"""

from __future__ import annotations

import os

from firmware.lane.keyring import RawRing, parse_ring, render_ring

from .atomic import write_file
from .registry import Registry, check_name

LANE_KEY_FILE = "lane.key"
FIRST_KEY_ID = 1


def site_key_path(reg: Registry, site: str) -> str:
    return f"site/{check_name(site, 'site')}/{LANE_KEY_FILE}"


def read_ring(reg: Registry, site: str) -> RawRing | None:
    """The site's ring, or None if no device of the site was provisioned yet."""
    path = reg.path(site_key_path(reg, site))
    if not path.exists():
        return None
    return parse_ring(path.read_text(), str(path))


def write_ring(reg: Registry, site: str, ring: RawRing) -> bytes:
    """Store ``ring`` as the site's; returns the file's bytes (what the devices get)."""
    path = reg.path(site_key_path(reg, site))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_ring(ring, site)
    write_file(path, text, 0o600)
    return text.encode()


def ensure_site_key(reg: Registry, site: str) -> bytes:
    """The site's key ring file, made on first use (one key, id 1); returns its bytes.
    A device added during a rotation gets the ring in force, so it follows the rollout."""
    ring = read_ring(reg, site)
    if ring is None:
        return write_ring(reg, site, RawRing(FIRST_KEY_ID, ((FIRST_KEY_ID, os.urandom(32)),)))
    return render_ring(ring, site).encode()
