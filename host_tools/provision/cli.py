"""``fieldterm provision``: the technician's tool for a region's CA, terminals and brokers.

This module only builds the parser. Each action's subparser names its handler in
:mod:`.handlers` with ``set_defaults(func=...)``; the handlers module (and with it the
cryptography stack) is imported only when an action runs, so registering the command
stays cheap for every other ``fieldterm`` command.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

HELP = """\
Provision a region: its CA, terminal identities and bundles, broker configuration,
revocation and rotation. State lives in the registry directory (--registry DIR or
FIELDTERM_REGISTRY). Typical flow:

  fieldterm provision --registry REG init --region central --passphrase-file pass.txt
  fieldterm provision --registry REG add-terminal kiosk-001 --out bundles/kiosk-001
  fieldterm provision --registry REG add-terminals --count 500 --prefix kiosk- --out bundles/
  fieldterm provision --registry REG broker-config --out /srv/fieldterm --port 8883
  mosquitto -c /srv/fieldterm/mosquitto.conf
  fieldterm provision --registry REG alert-desk --out desk/   # who reads hit alerts
"""


def _common(p: argparse.ArgumentParser, *, top: bool) -> None:
    d: Any = None if top else argparse.SUPPRESS
    p.add_argument(
        "--registry",
        metavar="DIR",
        default=d if not top else os.environ.get("FIELDTERM_REGISTRY"),
        help="the region's registry directory (env FIELDTERM_REGISTRY)",
    )
    p.add_argument(
        "--passphrase-file",
        metavar="FILE",
        default=d if not top else os.environ.get("FIELDTERM_PASSPHRASE_FILE"),
        help="file whose first line is the passphrase of the registry's private keys "
        "(env FIELDTERM_PASSPHRASE_FILE); prompted for on a terminal when needed",
    )


def _target(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", metavar="DIR", type=Path, help="write the bundle to this new directory")
    g.add_argument(
        "--sd-card",
        metavar="BOOTDIR",
        type=Path,
        help="write the bundle to BOOTDIR/fieldterm-bundle on a mounted SD-card boot "
        "partition; the kiosk's first boot installs it into /etc/fieldterm",
    )
    p.add_argument(
        "--csr",
        metavar="FILE",
        type=Path,
        help="certificate request made on the device (its TLS key never leaves it)",
    )
    p.add_argument(
        "--identity-pub",
        metavar="FILE",
        type=Path,
        help="Ed25519 public key (PEM) of an identity key made on the device",
    )
    p.add_argument(
        "--language",
        help="display language: en, ru, kk, ky, uz, tg, tk (default en; rotate keeps it)",
    )
    p.add_argument(
        "--scanner-port",
        help="scanner serial port or pyserial URL (default /dev/ttyUSB0; rotate keeps it)",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "provision",
        help="region CA, terminal bundles, broker config, revocation",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p, top=True)
    sub = p.add_subparsers(dest="provision_command", metavar="ACTION", required=True)

    s = sub.add_parser("init", help="create a region: CA, broker and regional identities, keys")
    _common(s, top=False)
    s.add_argument("--region", required=True, help="region name, e.g. central")
    s.add_argument("--host", default="127.0.0.1", help="address terminals use to reach the broker")
    s.add_argument("--port", type=int, default=8883, help="broker TLS port (default 8883)")
    s.add_argument(
        "--no-passphrase",
        action="store_true",
        help="leave the CA and service keys unencrypted (test regions only); without it, "
        "init needs --passphrase-file or asks on the terminal",
    )
    s.set_defaults(func=_handler("init"))

    s = sub.add_parser("add-terminal", help="new terminal identity and its bundle")
    _common(s, top=False)
    s.add_argument("id", help="terminal id: [a-z0-9][a-z0-9-]{0,62}, the certificate CN")
    s.add_argument("--site", help="the post the kiosk stands at")
    _target(s)
    s.set_defaults(func=_handler("add_terminal"))

    s = sub.add_parser(
        "add-terminals",
        help="many new terminals at once, each with its bundle (DIR/<id>)",
        description="Make --count terminals named PREFIX + a zero-padded number, each with "
        "the same bundle add-terminal writes, in DIR/<id>. Each batch (--batch-size) is one "
        "registry transaction; an error leaves nothing of its batch in the registry or in "
        "DIR. Broker directories are rewritten once at the end.",
        epilog="example (50 kiosks at post-7, bundles in bundles/post-7/kiosk-00001 ...):\n"
        "  fieldterm provision --registry REG --passphrase-file PASS add-terminals \\\n"
        "      --site post-7 --count 50 --prefix kiosk- --out bundles/post-7\n"
        "then reload the brokers as add-terminal says (kill -HUP $(pidof mosquitto))",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(s, top=False)
    s.add_argument("--count", type=int, required=True, metavar="N", help="how many terminals")
    s.add_argument(
        "--prefix", required=True, metavar="P", help="id prefix, e.g. kiosk- (kiosk-00001 ...)"
    )
    s.add_argument("--start", type=int, default=1, help="first number (default 1)")
    s.add_argument(
        "--digits", type=int, default=5, help="zero-padded width of the number (default 5)"
    )
    s.add_argument("--site", help="the post these kiosks stand at")
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="bundles go to DIR/<id>")
    s.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="B",
        help="terminals per registry transaction (default 1000)",
    )
    s.add_argument("--language", help="display language: en, ru, kk, ky, uz, tg, tk (default en)")
    s.add_argument("--scanner-port", help="scanner serial port (default /dev/ttyUSB0)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=_handler("add_terminals"))

    s = sub.add_parser("broker-config", help="write mosquitto.conf, ACL, CRL and regional.toml")
    _common(s, top=False)
    s.add_argument("--out", required=True, type=Path, metavar="DIR")
    s.add_argument("--host", help="address terminals connect to (default: the one from init)")
    s.add_argument("--port", type=int, help="TLS port (default: the one from init)")
    s.add_argument(
        "--bind",
        help="listen address (default: --host when it is an IP address, else all; use 0.0.0.0 to serve a network)",
    )
    s.add_argument(
        "--service-port",
        type=int,
        metavar="PORT",
        help="loopback port for the regional service and this tool's broker changes "
        "(default: --port + 1); it listens on 127.0.0.1 only",
    )
    s.add_argument(
        "--user", default="mosquitto", help="user mosquitto drops to when started as root"
    )
    s.add_argument(
        "--max-connections",
        type=int,
        default=60000,
        metavar="N",
        help="connections the terminals' listener accepts (default 60000; the "
        "fieldterm-broker.service written beside mosquitto.conf sets LimitNOFILE=65536)",
    )
    s.add_argument(
        "--site-bridge", metavar="SITE", help="write a site broker bridged to the regional broker"
    )
    s.add_argument(
        "--upstream", metavar="HOST:PORT", help="the regional broker (with --site-bridge)"
    )
    s.set_defaults(func=_handler("broker_config"))

    s = sub.add_parser(
        "alert-desk",
        help="files for the alert desk: TLS identity, the key that opens sealed hit alerts",
        description="Write the alert desk's directory: a TLS client certificate the broker "
        "lets read only the alert topic, the X25519 key that opens the sealed alert batches, "
        "the regional signing key that signs each alert, and desk.toml for 'fieldterm "
        "alerts'. Keep it on the desk's machine: whoever has alert-desk.key reads every hit.",
    )
    _common(s, top=False)
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new directory")
    s.add_argument("--host", help="broker address the desk connects to (default: from init)")
    s.add_argument("--port", type=int, help="broker TLS port (default: from init)")
    s.add_argument(
        "--rotate",
        action="store_true",
        help="the desk machine is lost or its key exposed: new key and certificate, the old "
        "certificate revoked; broker directories get the new CRL and key (reload mosquitto)",
    )
    s.set_defaults(func=_handler("alert_desk"))

    s = sub.add_parser(
        "add-annunciator",
        help="a supervisor's annunciator panel for some of a site's lanes",
        description="Write a MicroPython annunciator panel's directory (docs/annunciator.md): "
        "its certificate and key in DER, the CA in DER, the site's lane key and "
        "annunciator.json. The broker lets it read only its lanes' frames and write only "
        "its acknowledgements. 'revoke ID' cuts it off.",
    )
    _common(s, top=False)
    s.add_argument("id", help="panel id: [a-z0-9][a-z0-9-]{0,62}")
    s.add_argument("--site", required=True, help="the post the panel and its kiosks are at")
    s.add_argument(
        "--lanes", required=True, help="the kiosks it shows, in light order: kiosk-001,kiosk-002"
    )
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new directory")
    s.set_defaults(func=_handler("add_annunciator"))

    s = sub.add_parser(
        "rotate-site-key",
        help="a new lane key for a site's kiosks and panels, in three steps",
        description="Rotate a site's lane key (docs/annunciator.md) without leaving a lane "
        "dark. Step 1 (no flag) adds a new key that every device accepts; step 2 "
        "(--switch) makes them send under it; step 3 (--finish) drops the old key, whose "
        "frames are then refused. Each step rewrites lane.key in the site's kiosk bundles "
        "and panel directories; copy it onto every device of the site before the next "
        "step. Rotate after a lost kiosk or a revoked panel.",
    )
    _common(s, top=False)
    s.add_argument("--site", required=True, help="the post whose key is rotated")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--switch", action="store_true", help="step 2: send under the new key")
    g.add_argument("--finish", action="store_true", help="step 3: refuse the old key")
    s.set_defaults(func=_handler("rotate_site_key"))

    s = sub.add_parser("revoke", help="cut a terminal off (CRL, ACL, terminals.json)")
    _common(s, top=False)
    s.add_argument("id")
    s.set_defaults(func=_handler("revoke"))

    s = sub.add_parser("rotate", help="new certificate and keys for a terminal")
    _common(s, top=False)
    s.add_argument("id")
    s.add_argument(
        "--grace",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="how long the old identity keeps working (0: revoked now)",
    )
    _target(s)
    s.set_defaults(func=_handler("rotate"))

    s = sub.add_parser(
        "refresh", help="re-sign the CRL (ends rotation grace periods) and rewrite broker dirs"
    )
    _common(s, top=False)
    s.set_defaults(func=_handler("refresh"))

    s = sub.add_parser("list", help="terminals, their state and expiry")
    _common(s, top=False)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_handler("list_terminals"))

    s = sub.add_parser("show", help="one terminal: certificates, keys, bundle, revocation")
    _common(s, top=False)
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_handler("show"))

    from host_tools.provision import operators  # noqa: PLC0415 -- the console's accounts

    operators.register(sub, _common)


def _handler(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``handlers.<name>``, imported when the action runs."""

    def run(args: argparse.Namespace) -> int:
        from host_tools.provision import handlers  # noqa: PLC0415 -- heavy: cryptography

        func: Callable[[argparse.Namespace], int] = getattr(handlers, name)
        return func(args)

    run.__name__ = run.__qualname__ = name
    return run
