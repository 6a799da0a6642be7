"""Install the annunciator's MicroPython libraries into ``<venv>/lib/micropython``.

micropython-lib's MQTT client is on PyPI only as old source archives that pip downloads
but cannot install (no setup.py / pyproject.toml), so this script takes the pinned
archives from the package index (PEP 503 simple pages, the ones pip reads), checks each
against its pinned SHA-256, and unpacks only their MicroPython modules. It then writes
``ussl.py``: umqtt.simple 1.3.4 imports ``ussl``, which MicroPython 1.29 no longer has.
Nothing of micropython-lib is kept in this repository.

Run by ``make setup`` with the venv's Python; ``--force`` reinstalls. Offline and the
files already there: nothing to do.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")

#: (project, archive, sha256, {member path inside the archive: installed path})
PINS = (
    (
        "micropython-umqtt-simple",
        "micropython-umqtt.simple-1.3.4.tar.gz",
        "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f",
        {"micropython-umqtt.simple-1.3.4/umqtt/simple.py": "umqtt/simple.py"},
    ),
    (
        "micropython-umqtt-robust",
        "micropython-umqtt.robust-1.0.tar.gz",
        "22a1b8c8e1128281efb13b3020927d07e33c5b747869da2cd77d37983a9ea002",
        # its umqtt/simple.py is a symlink out of the archive: only robust.py is taken
        {"micropython-umqtt.robust-1.0/umqtt/robust.py": "umqtt/robust.py"},
    ),
    (
        "micropython-hmac",
        "micropython-hmac-3.4.2.post3.tar.gz",
        "e0fb5bad648c8b5a5838e958ea74ad3cc50872264f98fccc0a0b124550c2af0b",
        {"micropython-hmac-3.4.2.post3/hmac.py": "hmac.py"},
    ),
)

#: Our own one-line shim (not micropython-lib code).
USSL = "# written by scripts/micropython-deps.py: umqtt.simple 1.3.4 imports ussl\nfrom ssl import *  # noqa\n"
STAMP = ".installed"


def lib_dir() -> Path:
    """Where the annunciator tests put MicroPython's library path (MICROPYPATH)."""
    return Path(sys.prefix) / "lib" / "micropython"


def _archive_url(project: str, archive: str) -> str:
    page_url = f"{INDEX}/{project}/"
    with urllib.request.urlopen(page_url, timeout=60) as r:  # noqa: S310 -- the index
        page = r.read().decode()
    for href in re.findall(r'href="([^"]+)"', page):
        if urllib.parse.unquote(href.split("#", 1)[0]).rsplit("/", 1)[-1] == archive:
            return urllib.parse.urljoin(page_url, href.split("#", 1)[0])
    raise SystemExit(f"micropython-deps: {archive} not listed at {page_url}")


def _fetch(project: str, archive: str, sha256: str) -> bytes:
    url = _archive_url(project, archive)
    with urllib.request.urlopen(url, timeout=120) as r:  # noqa: S310 -- the index's file
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(f"micropython-deps: {archive}: sha256 {got}, pinned {sha256}")
    return data


def _unpack(data: bytes, members: dict[str, str], dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name, target in members.items():
            info = tar.getmember(name)
            if not info.isfile():
                raise SystemExit(f"micropython-deps: {name} is not a regular file")
            f = tar.extractfile(info)
            assert f is not None
            out = dest / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.read())


def main(argv: list[str]) -> int:
    dest = lib_dir()
    stamp = dest / STAMP
    want = "\n".join(p[2] for p in PINS) + "\n"
    if "--force" not in argv and stamp.exists() and stamp.read_text() == want:
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    for project, archive, sha256, members in PINS:
        _unpack(_fetch(project, archive, sha256), members, dest)
    (dest / "ussl.py").write_text(USSL)
    stamp.write_text(want)
    print(f"micropython-deps: umqtt.simple 1.3.4, umqtt.robust 1.0, hmac 3.4.2.post3 in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
