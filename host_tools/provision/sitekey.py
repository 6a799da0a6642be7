"""The per-site lane key (docs/annunciator.md): 32 random bytes as 64 hex characters,
shared by a site's kiosks (in their bundle) and its annunciator panels. It seals the
lane frames and the panels' acknowledgements."""

from __future__ import annotations

from . import protokeys
from .atomic import write_file
from .registry import Registry, check_name

LANE_KEY_FILE = "lane.key"


def site_key_path(reg: Registry, site: str) -> str:
    return f"site/{check_name(site, 'site')}/{LANE_KEY_FILE}"


def ensure_site_key(reg: Registry, site: str) -> bytes:
    """The site's lane key file, made on first use; returns its bytes."""
    path = reg.path(site_key_path(reg, site))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, protokeys.new_secret_hex() + "\n", 0o600)
    return path.read_bytes()
