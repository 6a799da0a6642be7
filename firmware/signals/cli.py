"""``fieldterm signals``: what each kiosk state looks and sounds like.

``fieldterm signals patterns`` lists every state's LED and buzzer pattern in words (for
technicians, officers' training and colour-blind users); with ``--json`` it also gives each
channel's level sampled on a time grid, which is how tools outside the kiosk (the HIL rig)
compare recorded pins with the firmware's own patterns without importing the firmware.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def sampled(step: float, seconds: float) -> dict[str, Any]:
    """``{"step", "seconds", "states": {state: {"describe", "levels": {ch: "0110..."}}}}``:
    each channel's level at ``0, step, 2*step, ...`` up to ``seconds`` after the state was
    shown, as a string of 0 and 1."""
    from firmware.signals.patterns import CHANNELS, PATTERNS  # noqa: PLC0415

    if not (0 < step <= seconds <= 600):
        raise ValueError("need 0 < step <= seconds <= 600")
    n = round(seconds / step)
    states = {
        state: {
            "describe": pattern.describe(),
            "levels": {
                ch: "".join("1" if pattern.level(ch, i * step) else "0" for i in range(n))
                for ch in CHANNELS
            },
        }
        for state, pattern in PATTERNS.items()
    }
    return {"step": step, "seconds": seconds, "states": states}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "signals",
        help="the LED and buzzer pattern of each kiosk state",
        description=(__doc__ or "").split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="signals_command", metavar="ACTION", required=True)
    pat = sub.add_parser("patterns", help="list every state's pattern")
    pat.add_argument("--json", action="store_true", help="JSON, with sampled levels")
    pat.add_argument(
        "--step", type=float, default=0.02, help="sampling step in seconds (default 0.02)"
    )
    pat.add_argument("--seconds", type=float, default=6.0, help="how long to sample (default 6)")
    pat.set_defaults(func=_patterns)


def _patterns(args: argparse.Namespace) -> int:
    try:
        table = sampled(args.step, args.seconds)
    except ValueError as exc:
        print(f"fieldterm signals patterns: --step/--seconds: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(table, sys.stdout)
        sys.stdout.write("\n")
        return 0
    width = max(map(len, table["states"]))
    for state, info in table["states"].items():
        print(f"{state:{width}s} {info['describe']}")
    return 0
