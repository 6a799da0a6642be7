"""A terminal's bundle: terminal.toml, its TLS identity, its protocol keys, the pinned
regional keys. Written as a whole (staged, then renamed) to a directory or to a mounted
SD-card boot partition, where ``hardware/firstboot`` moves it into /etc/fieldterm.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from firmware.errors import SetupError

from .atomic import check_writable, staged_dir

#: Directory name on the SD card's boot partition that the first-boot unit looks for.
SD_DIR = "fieldterm-bundle"
MANIFEST = "MANIFEST.sha256"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
LANGUAGES = ("en", "ru", "kk", "ky", "uz", "tg", "tk")


@dataclass(frozen=True)
class TerminalSettings:
    """What goes into terminal.toml besides file names."""

    terminal_id: str
    region: str
    host: str
    port: int
    site: str | None = None
    language: str = "en"
    scanner_port: str = "/dev/ttyUSB0"
    keepalive: int = 30
    query_timeout: float = 2.0
    session_lifetime: int = 86400


@dataclass
class Bundle:
    """Files of a bundle: name -> (content, mode)."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)

    def add(self, name: str, content: bytes | str, secret: bool = False) -> None:
        raw = content.encode() if isinstance(content, str) else content
        self.files[name] = (raw, SECRET_MODE if secret else PUBLIC_MODE)

    def manifest(self) -> str:
        """sha256sum format, checked by the first-boot script before it installs anything."""
        lines = [
            f"{hashlib.sha256(c).hexdigest()}  {n}" for n, (c, _) in sorted(self.files.items())
        ]
        return "\n".join(lines) + "\n"


def broker_table(host: str, port: int, cert: str, key: str, keepalive: int = 30) -> dict[str, Any]:
    """The ``[broker]`` section every generated config has (terminal, regional, desk): mutual
    TLS with the region's CA chain, the client's certificate and key beside the file."""
    return {
        "host": host,
        "port": port,
        "ca": "ca.crt",
        "cert": cert,
        "key": key,
        "keepalive": keepalive,
    }


def terminal_toml(s: TerminalSettings) -> str:
    """terminal.toml as in docs/architecture.md; paths are relative to the file."""
    if s.language not in LANGUAGES:
        raise SetupError(f"--language {s.language!r}: use one of {', '.join(LANGUAGES)}")
    term: dict[str, Any] = {"id": s.terminal_id, "region": s.region}
    if s.site:
        term["site"] = s.site
    term["language"] = s.language
    doc: Mapping[str, Any] = {
        "terminal": term,
        "broker": broker_table(s.host, s.port, "client.crt", "client.key", s.keepalive),
        "protocol": {
            "identity_key": "identity.key",
            "regional_kem_public": "regional-kem.pub",
            "regional_sign_public": "regional-sign.pub",
            "query_timeout": s.query_timeout,
            "session_lifetime": s.session_lifetime,
        },
        "scanner": {"port": s.scanner_port, "framing": "auto"},
        "agent": {
            "state_dir": "/var/lib/fieldterm",
            "audit_key": "audit.key",
            "mrz_mode": "repair",
        },
        "offline": {"list_key": "offline-list.key", "max_age": 172800},
    }
    if s.site:  # lane frames for the site's annunciator (docs/annunciator.md)
        doc = {**doc, "lane": {"site": s.site, "key": "lane.key", "interval": 2.0}}
    head = (
        f"# fieldterm terminal {s.terminal_id}, region {s.region}: written by "
        "'fieldterm provision'.\n# Relative paths resolve against this file's directory.\n\n"
    )
    return head + tomli_w.dumps(doc)


def write_bundle(bundle: Bundle, *, out: Path | None = None, sd_card: Path | None = None) -> Path:
    """Write the bundle atomically; returns the final directory.

    ``out``: a new (or empty) directory. ``sd_card``: the mounted boot partition; the
    bundle goes to ``<sd_card>/fieldterm-bundle``.
    """
    if (out is None) == (sd_card is None):
        raise SetupError("give exactly one of --out DIR or --sd-card BOOTDIR")
    if sd_card is not None:
        check_writable(Path(sd_card), "the SD card's boot partition")
        target = Path(sd_card) / SD_DIR
        if target.exists():
            raise SetupError(
                f"{target} already holds a bundle that was not installed yet: if it is stale, "
                "delete that directory; otherwise use another card"
            )
    else:
        assert out is not None
        target = Path(out)
        with contextlib.suppress(OSError):  # an unwritable parent is reported just below
            target.parent.mkdir(parents=True, exist_ok=True)
    target = target.absolute()
    with staged_dir(target, 0o700) as tmp:
        fill_dir(bundle, tmp)
    return target


def fill_dir(bundle: Bundle, directory: Path) -> None:
    """Write the bundle's files and manifest into ``directory`` (a staging directory: the
    caller makes it durable and renames it into place)."""
    files = [*bundle.files.items(), (MANIFEST, (bundle.manifest().encode(), PUBLIC_MODE))]
    for name, (content, mode) in files:
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
