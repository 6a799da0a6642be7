"""The ``fieldterm sim fleet`` command line (the run itself is :mod:`host_tools.sim.fleet`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
Simulate a region's kiosk fleet against a real local region on this machine.

The run provisions --terminals kiosks (each its own certificate, identity key and
session), generates a synthetic list, starts Mosquitto with mutual TLS and --regionals
'fieldterm regional' processes sharing the queries (MQTT v5 shared subscription), then
drives every kiosk from one event loop with the real sealed query client. Scans are a
Poisson process per lane with bus/train bursts, at --rate scans/s in total; --hit-rate
of them are listed documents. A scan that gets UNKNOWN (timeout) is kept and sent again,
as the agent does, until answered. --fault restarts a part during the run.

A progress line goes to stderr; the result is one JSON line on stdout:
  {"terminals", "sites", "regionals", "scans", "answered", "lost", "wrong", "p50_ms",
   "p99_ms", "max_ms", "recovery_s", "broker_rss_mb", ... }
lost = scans without an answer at the end; wrong = answers that disagree with the list
(expected from the generated samples, not from the regional); recovery_s = after each
fault, until every kiosk that dropped is subscribed again and every scan caught in the
fault is answered (the largest over the faults; null if some never recovered).
"""

_EPILOG = """\
exit status: 0 when lost and wrong are both 0 and every fault recovered, 1 otherwise,
2 for bad options.

examples:
  fieldterm sim fleet --terminals 200 --regionals 2 --rate 40 --duration 30 \\
      --fault broker@10
  fieldterm sim fleet --terminals 200 --sites 4 --regionals 2 --fault broker@10 \\
      --fault site@20:1
  fieldterm sim fleet --terminals 1000 --rate 200 --duration 60 --fault regional@20:0 \\
      --hit-rate 0.01 --workdir /tmp/fleet --keep
"""


def add_fleet_parser(sims: Any) -> None:
    s = sims.add_parser(
        "fleet",
        help="many simulated kiosks against a real local region (one event loop)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--terminals", type=int, default=200, metavar="N", help="kiosks (200)")
    s.add_argument(
        "--sites",
        type=int,
        default=0,
        metavar="M",
        help="site brokers (broker-config --site-bridge) bridged over TLS to the regional "
        "broker, the kiosks split among them in blocks; 0 = every kiosk direct (0)",
    )
    s.add_argument(
        "--direct",
        type=int,
        default=0,
        metavar="D",
        help="with --sites: the first D kiosks bypass their site broker and talk to the "
        "regional broker with the same certificate (a mixed region) (0)",
    )
    s.add_argument("--regionals", type=int, default=1, metavar="K", help="regional processes (1)")
    s.add_argument(
        "--rate", type=float, default=50.0, metavar="SCANS_PER_S", help="offered load (50)"
    )
    s.add_argument(
        "--duration", type=float, default=30.0, metavar="S", help="seconds of traffic (30)"
    )
    s.add_argument(
        "--hit-rate",
        type=float,
        default=1e-4,
        metavar="P",
        help="share of scans that are listed documents (0.0001, SLTD's 1 in 10,000)",
    )
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@S[:N]",
        help="restart a part S seconds into the traffic: broker@S (the regional broker), "
        "site@S:N (site broker N) or regional@S:N (regional process N); repeatable",
    )
    s.add_argument("--burst-share", type=float, default=0.3, help="share of scans in bursts (0.3)")
    s.add_argument("--burst-size", type=int, default=40, help="travellers per bus/train (40)")
    s.add_argument("--burst-lanes", type=int, default=8, help="lanes a burst spreads over (8)")
    s.add_argument("--burst-span", type=float, default=30.0, help="seconds a burst lasts (30)")
    s.add_argument(
        "--retry-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="an unanswered scan is sent again at once when the link comes back, and "
        "while it is up after 1, 2, 4, ... s, at most this far apart (10, the agent's "
        "retry_interval)",
    )
    s.add_argument(
        "--drain", type=float, default=60.0, metavar="S", help="after the traffic, wait at "
        "most this long for the last answers (60)",
    )  # fmt: skip
    s.add_argument("--records", type=int, default=5000, help="synthetic list size (5000)")
    s.add_argument(
        "--sample-size", type=int, default=500, help="listed/unlisted sample documents (500)"
    )
    s.add_argument("--seed", type=int, default=1, help="seed for traffic and documents (1)")
    s.add_argument("--workdir", type=Path, default=None, help="region directory (a new temp dir)")
    s.add_argument("--keep", action="store_true", help="keep the region directory afterwards")
    s.set_defaults(func=run_fleet_cli)


def run_fleet_cli(args: argparse.Namespace) -> int:
    from host_tools.sim.fleet import Fault, FleetOptions, print_report, run_fleet  # noqa: PLC0415

    try:
        faults = tuple(Fault.parse(f) for f in args.fault)
    except ValueError as exc:
        print(f"fieldterm sim fleet: {exc}", file=sys.stderr)
        return 2
    for name in ("terminals", "regionals", "sample_size"):
        if getattr(args, name) < 1:
            print(f"fieldterm sim fleet: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if not 0 <= args.direct <= args.terminals:
        print("fieldterm sim fleet: --direct must be between 0 and --terminals", file=sys.stderr)
        return 2
    if not 0 <= args.sites <= args.terminals:
        print("fieldterm sim fleet: --sites must be between 0 and --terminals", file=sys.stderr)
        return 2
    for f in faults:
        limit = {"site": args.sites, "regional": args.regionals}.get(f.kind)
        if limit is not None and not 0 <= f.target < limit:
            print(f"fieldterm sim fleet: --fault {f.kind}@{f.at:g}:{f.target}: no such "
                  f"{f.kind} (0..{limit - 1})", file=sys.stderr)  # fmt: skip
            return 2
    opts = FleetOptions(
        terminals=args.terminals,
        sites=args.sites,
        direct=args.direct,
        regionals=args.regionals,
        rate=args.rate,
        duration=args.duration,
        hit_rate=args.hit_rate,
        faults=faults,
        seed=args.seed,
        records=args.records,
        sample_size=args.sample_size,
        retry_interval=args.retry_interval,
        drain=args.drain,
        workdir=args.workdir,
        keep=args.keep,
        traffic={
            "burst_share": args.burst_share,
            "burst_size": args.burst_size,
            "burst_lanes": args.burst_lanes,
            "burst_span": args.burst_span,
        },
    )
    report = run_fleet(opts)
    print_report(report)
    ok = report["lost"] == 0 and report["wrong"] == 0
    ok = ok and (not faults or report["recovery_s"] is not None)
    return 0 if ok else 1
