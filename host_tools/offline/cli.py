"""``fieldterm offline build``: a full offline list from the regional's store and keys.

Registered into ``fieldterm offline`` through the ``fieldterm.offline_commands`` group.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

_BUILD = """\
Hash every record of the regional's SLTD store under the offline-list key ([offline]
list_key of regional.toml), build the binary fuse filter, sign its manifest with the
regional's signing key and write the list directory DIR (manifest.json, filter.ftol).
Prints one JSON line: {"version", "records", "bytes", "bits_per_record", "build_s"}.
"""


def register(osub: argparse._SubParsersAction) -> None:
    p = osub.add_parser(
        "build",
        help="build a full offline list from the regional's store (regional server)",
        description=_BUILD,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="REGIONAL_TOML", help="regional.toml")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="list directory")
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from firmware.errors import SetupError  # noqa: PLC0415
    from firmware.offline.listkey import key_id, load_list_key  # noqa: PLC0415
    from firmware.protocol.keys import load_ed25519_private  # noqa: PLC0415
    from host_tools.offline.builder import build_full, hash_store, write_list_dir  # noqa: PLC0415
    from host_tools.offline.config import OfflineBuildConfig  # noqa: PLC0415
    from host_tools.sltd.store import open_store  # noqa: PLC0415

    t0 = time.perf_counter()
    cfg = OfflineBuildConfig.load(args.config)
    list_key = load_list_key(cfg.list_key)
    sign_key = load_ed25519_private(cfg.sign_key)
    with open_store(cfg.sltd_db) as store:
        version, keys = hash_store(store, list_key)
    if version < 1:
        raise SetupError(f"{cfg.sltd_db}: the SLTD store has no committed list version yet")
    built = build_full(
        keys,
        region=cfg.region,
        version=version,
        sign_key=sign_key,
        key_id=key_id(list_key),
        bits=cfg.fingerprint_bits,
        chunk_size=cfg.chunk_size,
    )
    write_list_dir(args.out, built)
    n = int(keys.size)
    size = len(built.payload)
    out = {
        "version": version,
        "records": n,
        "bytes": size,
        "bits_per_record": round(size * 8 / n, 3) if n else None,
        "build_s": round(time.perf_counter() - t0, 3),
    }
    print(json.dumps(out))
    return 0
