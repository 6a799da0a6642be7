"""``fieldterm console``: the regional operator's web console over HTTPS.

Runs from the alert desk's directory (the one ``provision alert-desk`` wrote): desk.toml
says which broker and keys; beside it ``console.crt``/``console.key`` (its HTTPS
certificate) and ``console-mqtt.crt``/``console-mqtt.key`` (its own MQTT identity, CN
``alert-console``: the broker's address comes from desk.toml, the certificate does not, so
``fieldterm alerts`` can run with the desk's at the same time), both from ``provision
console-cert``, ``operators.json`` (``provision operator add``), ``fleet.json`` (the
provisioned terminals, from ``console-cert``), and what the console keeps:
``console.sqlite`` (hits and their follow-up) and ``operator-audit.log`` (the hash-chained
operator audit log).

    fieldterm console --config desk/desk.toml --regional-health '/srv/fieldterm/*.health.json'
    fieldterm console --config desk/desk.toml --verify-audit
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from firmware.errors import SetupError

log = logging.getLogger(__name__)
DEFAULT_LISTEN = "127.0.0.1:8443"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console",
        help="the regional operator's web console (hits, fleet, region) over HTTPS",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the alert desk's desk.toml")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT")
    p.add_argument(
        "--escalate-after", type=float, default=5.0, metavar="MIN",
        help="a hit nobody acknowledged for MIN minutes is escalated (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--offline-after", type=float, default=150.0, metavar="S",
        help="a kiosk silent for S seconds is offline (default 150: 2.5 status intervals)",
    )  # fmt: skip
    p.add_argument(
        "--regional-health", action="append", default=[], metavar="GLOB",
        help="health files of the regional processes (fieldterm regional --health-file)",
    )  # fmt: skip
    p.add_argument(
        "--verify-audit", action="store_true",
        help="verify the operator audit log's hash chain and exit (0: intact)",
    )  # fmt: skip
    p.set_defaults(func=_run)


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SetupError(f"--listen {text!r}: write HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)


def _run(args: argparse.Namespace) -> int:
    from host_tools.console import oplog  # noqa: PLC0415

    desk_dir = Path(args.config).absolute().parent
    audit = desk_dir / "operator-audit.log"
    if args.verify_audit:
        v = oplog.verify(audit)
        if v.ok:
            print(f"operator audit {audit}: {v.entries} entries, chain intact, head {v.head}")
            return 0
        print(f"operator audit {audit}: BROKEN after {v.entries} good entries: {v.error}")
        return 1
    return serve(args, desk_dir)


def serve(args: argparse.Namespace, desk_dir: Path) -> int:
    import uvicorn  # noqa: PLC0415

    from firmware.protocol import telemetry, topics  # noqa: PLC0415
    from firmware.transport.mqtt import MqttLink  # noqa: PLC0415
    from host_tools.console import telemetry_open  # noqa: PLC0415
    from host_tools.console.app import ConsoleState, build  # noqa: PLC0415
    from host_tools.console.feed import Feed  # noqa: PLC0415
    from host_tools.console.fleet import Fleet  # noqa: PLC0415
    from host_tools.console.hits import HitStore  # noqa: PLC0415
    from host_tools.console.oplog import OperatorLog  # noqa: PLC0415
    from host_tools.console.region import RegionHealth  # noqa: PLC0415
    from host_tools.provision.operators import FLEET_FILE, OPERATORS_FILE, Operators  # noqa: PLC0415
    from host_tools.regional.desk import DESK_SESSION_EXPIRY, DeskConfig  # noqa: PLC0415

    host, port = _listen(args.listen)
    cfg = DeskConfig.load(args.config)
    cert, key = desk_dir / "console.crt", desk_dir / "console.key"
    mqtt_cert, mqtt_key = desk_dir / "console-mqtt.crt", desk_dir / "console-mqtt.key"
    for f in (cert, key, mqtt_cert, mqtt_key):
        if not f.exists():
            raise SetupError(
                f"{f} is missing: run 'fieldterm provision console-cert --desk {desk_dir}'"
            )
    broker = dataclasses.replace(cfg.broker, cert=mqtt_cert, key=mqtt_key)
    operators = Operators(desk_dir / OPERATORS_FILE)
    if not operators.load():
        log.warning("no operator accounts in %s: nobody can log in "
                    "(fieldterm provision operator add NAME --role supervisor --desk %s)",
                    operators.path, desk_dir)  # fmt: skip
    fleet = Fleet(desk_dir / FLEET_FILE, offline_after=args.offline_after)
    state = ConsoleState(
        hits=HitStore(desk_dir / "console.sqlite"),
        fleet=fleet,
        region=RegionHealth(args.regional_health),
        operators=operators,
        oplog=OperatorLog(desk_dir / "operator-audit.log"),
        region_name=cfg.region,
        escalate_after=args.escalate_after * 60.0,
    )
    feed = Feed(cfg, state.hits, fleet, state.broadcaster.notify,
                telemetry=telemetry_open.opener(cfg.alert_key, cfg.region, fleet))  # fmt: skip
    subs = (
        topics.alert_topic(cfg.region),
        topics.per_terminal_filter(cfg.region, "status"),
        telemetry.topic_filter(cfg.region),
    )

    def on_link(up: bool) -> None:
        if up and fleet.live_since is None:
            fleet.live_since = time.time() + 2.0  # retained copies come right after SUBACK
        state.broadcaster.notify("link")

    link = MqttLink(
        broker, f"console-{os.uname().nodename}-{os.getpid()}",
        on_message=feed.on_message, subscriptions=subs, on_link=on_link,
        session_expiry=DESK_SESSION_EXPIRY,  # hit alerts survive a broker restart
    )  # fmt: skip
    app = build(state)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"console listening on https://{host}:{port}/ (region {cfg.region})",
                      file=sys.stderr, flush=True)  # fmt: skip

    server = Server(
        uvicorn.Config(
            app, host=host, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
            log_level="warning", timeout_graceful_shutdown=2, access_log=False,
        )
    )  # fmt: skip
    link.start()
    try:
        server.run()
    finally:
        link.close()
        state.hits.close()
    return 0
