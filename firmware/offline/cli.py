"""``fieldterm offline``: the kiosk's offline list from the command line.

``check`` and ``status`` run on a kiosk; further subcommands (``build`` on the regional
server) register themselves through the ``fieldterm.offline_commands`` entry-point group,
as ``fieldterm`` itself does, so this module never imports host tools.

Exit codes: 0 ok; 4 the list (or the config) was refused, the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

EXIT_REFUSED = 4
GROUP = "fieldterm.offline_commands"

_CHECK = """\
Verify the list in DIR (signature under the terminal's pinned regional key, region,
offline-list key, every chunk's SHA-256). If that fails: the reason on stderr, no verdict
lines, exit 4. Otherwise one JSON line per standard-input line (a JSON array of MRZ
lines): {"offline": "LISTED"|"NOT_LISTED"|"RESCAN", "list_version": N, "list_age_s": x}.
LISTED is a lead (false positives about 1 in 256 with 8-bit fingerprints), never a verdict.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "offline",
        help="the signed offline list: check documents against it, show the installed one",
        description="The offline list: a signed binary fuse filter of keyed document hashes.",
    )
    osub = p.add_subparsers(dest="offline_command", metavar="SUBCOMMAND", required=True)
    c = osub.add_parser(
        "check",
        help="verify a list directory, then look up MRZ lines in it",
        description=_CHECK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--config", required=True, metavar="TERMINAL_TOML", help="terminal.toml")
    c.add_argument("--list", required=True, type=Path, metavar="DIR", help="a list directory")
    c.add_argument(
        "--mrz-jsonl", action="store_true", required=True, help="JSON arrays of MRZ lines on stdin"
    )
    c.add_argument("--mode", choices=("strict", "tolerant", "repair"), default="strict")
    c.set_defaults(func=_check)
    s = osub.add_parser(
        "status",
        help="version, age and record count of the kiosk's installed list",
        description="One JSON line about <state_dir>/offline; exit 4 if no usable list.",
    )
    s.add_argument("--config", required=True, metavar="TERMINAL_TOML", help="terminal.toml")
    s.add_argument("--state-dir", type=Path, help="override [agent] state_dir")
    s.set_defaults(func=_status)
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            ep.load()(osub)
        except ImportError as exc:
            log.debug("offline %s unavailable: %s", ep.name, exc)
            stub = osub.add_parser(ep.name, help=f"(unavailable here: {exc})")
            stub.set_defaults(func=_unavailable(ep.name, exc))


def _unavailable(name: str, exc: Exception) -> Any:
    def run(_args: argparse.Namespace) -> int:
        print(f"fieldterm offline {name}: not available on this machine: {exc}", file=sys.stderr)
        return EXIT_REFUSED

    return run


def _load(path: str, state_dir: Path | None = None) -> tuple[Any, Any, bytes]:
    from firmware.offline.config import OfflineTerminalConfig  # noqa: PLC0415
    from firmware.offline.listkey import load_list_key  # noqa: PLC0415
    from firmware.protocol.keys import load_ed25519_public  # noqa: PLC0415

    cfg = OfflineTerminalConfig.load(path, state_dir=state_dir)
    return cfg, load_ed25519_public(cfg.sign_public), load_list_key(cfg.list_key)


def _refused(cmd: str, exc: Any) -> int:
    print(f"fieldterm offline {cmd}: list refused ({exc.reason}): {exc}", file=sys.stderr)
    return EXIT_REFUSED


def _check(args: argparse.Namespace) -> int:
    from firmware.offline.errors import OfflineListError  # noqa: PLC0415
    from firmware.offline.listdir import open_list  # noqa: PLC0415
    from firmware.offline.listkey import key_id  # noqa: PLC0415

    cfg, pub, list_key = _load(args.config)
    try:
        lst = open_list(args.list, pub, cfg.region, key_id(list_key))
    except OfflineListError as exc:
        return _refused("check", exc)
    with lst:
        check_lines(lst, list_key, sys.stdin, sys.stdout, args.mode)
    return 0


def check_lines(lst: Any, list_key: bytes, stdin: IO[str], stdout: IO[str], mode: str) -> int:
    """One verdict line per input line (blank lines skipped); returns the count."""
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.protocol.dockey import DocumentKey  # noqa: PLC0415

    n = 0
    for raw in stdin:
        text = raw.strip().removeprefix("\ufeff")
        if not text:
            continue
        verdict = "RESCAN"
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, list) and all(isinstance(x, str) for x in doc):
            result = parse(doc, mode)
            if result.valid:
                try:
                    dk = DocumentKey.from_mrz(result)
                except ValueError:
                    dk = None
                if dk is not None:
                    verdict = "LISTED" if lst.listed(list_key, dk) else "NOT_LISTED"
        out = {"offline": verdict, "list_version": lst.version, "list_age_s": round(lst.age_s(), 3)}
        stdout.write(json.dumps(out) + "\n")
        n += 1
    stdout.flush()
    return n


def _status(args: argparse.Namespace) -> int:
    from firmware.offline.errors import OfflineListError  # noqa: PLC0415
    from firmware.offline.listkey import key_id  # noqa: PLC0415
    from firmware.offline.store import OfflineStore  # noqa: PLC0415

    cfg, pub, list_key = _load(args.config, args.state_dir)
    store = OfflineStore(cfg.store_dir, region=cfg.region, sign_public=pub, key_id=key_id(list_key))
    out: dict[str, Any] = {"store": str(cfg.store_dir), "max_age_s": cfg.max_age}
    try:
        lst = store.current()
    except OfflineListError as exc:
        out.update({"list_version": None, "reason": exc.reason})
        print(json.dumps(out))
        return _refused("status", exc)
    with lst:
        age = lst.age_s(time.time())
        out.update(
            {
                "list_version": lst.version,
                "list_age_s": round(age, 3),
                "records": lst.records,
                "full_version": lst.full.version,
                "delta": lst.delta_manifest is not None,
                "stale": age > cfg.max_age,
            }
        )
    print(json.dumps(out))
    return 0
