"""``fieldterm audit verify``: check the terminal's hash-chained audit log."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_TAMPERED = 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "audit",
        help="check the terminal's audit log",
        description="Tools for the terminal's hash-chained audit log.",
    )
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = sub.add_parser(
        "verify",
        help="verify the hash chain of an audit log",
        description=(
            "Recompute every line's keyed MAC and its link to the previous line. Any edited, "
            "deleted, inserted or reordered line, or a cut in the middle, is reported with "
            "its line number. Exit status 0 when the chain is intact, 1 when it is not. "
            "A cut at the very end needs the head from the terminal's status message: "
            "pass it with --expect-seq/--expect-mac. The full segments beside the log "
            "(audit-<first seq>.log) are checked first, as one chain with it; a removed, "
            "renamed or edited segment is reported like a line."
        ),
    )
    v.add_argument("--config", help="terminal.toml: use its [agent] state_dir and audit_key")
    v.add_argument("--log", help="the active audit log (default: <state_dir>/audit.log)")
    v.add_argument(
        "--this-file-only",
        action="store_true",
        help="check the --log file alone, not the segments beside it",
    )
    v.add_argument("--key", help="the audit key file (32 bytes, hex)")
    v.add_argument("--expect-seq", type=int, help="head sequence number published in status")
    v.add_argument("--expect-mac", help="head MAC published in status")
    v.add_argument("--json", action="store_true", help="print the report as one JSON object")
    v.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from firmware.agent.audit import AuditHead, load_audit_key, verify_file  # noqa: PLC0415
    from firmware.errors import ConfigError  # noqa: PLC0415

    log_path = Path(args.log) if args.log else None
    key_path = Path(args.key) if args.key else None
    if args.config:
        from firmware.agent.config import AgentSection  # noqa: PLC0415
        from firmware.config import ConfigDoc  # noqa: PLC0415

        doc = ConfigDoc.load(args.config)
        sec = AgentSection.from_section(doc.section("agent"))
        log_path = log_path or sec.audit_path
        key_path = key_path or sec.audit_key
    if log_path is None or key_path is None:
        raise ConfigError("give --config, or both --log and --key")
    head = None
    if args.expect_seq is not None or args.expect_mac is not None:
        if args.expect_seq is None or args.expect_mac is None:
            raise ConfigError("--expect-seq and --expect-mac go together")
        head = AuditHead(args.expect_seq, args.expect_mac)
    rep = verify_file(
        log_path, load_audit_key(key_path), expect_head=head, all_segments=not args.this_file_only
    )
    if args.json:
        out = {
            "ok": rep.ok,
            "entries": rep.entries,
            "segments": rep.segments,
            "counts": rep.counts,
            "head": {"seq": rep.head.seq, "mac": rep.head.mac} if rep.head else None,
            "problems": rep.problems,
        }
        print(json.dumps(out))
    else:
        for problem in rep.problems:
            print(f"{log_path}: {problem}")
        status = "OK" if rep.ok else "TAMPERED"
        assert rep.head is not None
        print(
            f"audit {status}: {rep.entries} entries, head seq {rep.head.seq} "
            f"mac {rep.head.mac[:16]}..., {len(rep.problems)} problems, "
            f"{rep.segments} segment(s)",
            file=sys.stdout,
        )
    return EXIT_OK if rep.ok else EXIT_TAMPERED
