"""The console's operator accounts and its HTTPS identity (``fieldterm provision operator``,
``fieldterm provision console-cert``).

Accounts live in ``operators.json`` in the alert desk's directory, beside ``desk.toml``:
the console runs there (it needs the desk's key to open alerts), so its accounts do too.
Each account is a name, a role (``viewer`` reads; ``supervisor`` also moves hits through
their workflow) and an argon2id hash (``argon2-cffi``'s defaults, RFC 9106's second
recommended parameter set). The file never holds a password; it is written atomically,
mode 0600.

``console-cert`` issues the console's TLS server certificate from the region's issuing CA
(as the broker's is), the console's own MQTT client identity (CN ``alert-console``, which
the broker lets subscribe to the alerts, the kiosks' status and their telemetry, and
publish nothing: ``console-mqtt.crt``/``.key``; the desk's ``desk.crt`` stays the desk's,
so ``fieldterm alerts`` and ``fieldterm console`` can run at once), and writes ``fleet.json``: every provisioned terminal with its site,
revocation, certificate expiry and identity public keys (which sign its telemetry), which
the console's fleet page lists. Run it again
after ``add-terminal``, ``revoke`` or ``rotate``; the console re-reads the file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError, SetupError

from .atomic import write_file

OPERATORS_FILE = "operators.json"
FLEET_FILE = "fleet.json"
ROLES = ("viewer", "supervisor")
NAME_RE = re.compile(r"[a-z][a-z0-9._-]{0,31}\Z")
MIN_PASSWORD = 10

_HASHER: Any = None


def _hasher() -> Any:
    """argon2-cffi's PasswordHasher (argon2id, RFC 9106 low-memory profile: t=3, m=64 MiB,
    p=4), imported when first needed so registering the command stays cheap."""
    global _HASHER  # noqa: PLW0603
    if _HASHER is None:
        from argon2 import PasswordHasher  # noqa: PLC0415

        _HASHER = PasswordHasher()
    return _HASHER


@dataclass(frozen=True)
class Operator:
    name: str
    role: str
    hash: str
    created: str


def check_operator_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise ConfigError(
            f"{name!r} is not a valid operator name: 1-32 of a-z 0-9 . _ -, starting with a "
            "letter, e.g. 'ivanova'",
            field="name",
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: use one of {', '.join(ROLES)}", field="--role")
    return role


class Operators:
    """The accounts file: load, change, save. Verifying a password is the console's job
    (:meth:`verify`), with a dummy hash for unknown names so timing tells nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._dummy: str | None = None

    def load(self) -> dict[str, Operator]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            rows = doc["operators"]
            return {
                r["name"]: Operator(r["name"], r["role"], r["hash"], r["created"]) for r in rows
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SetupError(f"{self.path}: not a fieldterm operators file ({exc})") from exc

    def save(self, ops: dict[str, Operator]) -> None:
        doc = {
            "version": 1,
            "operators": [
                {"name": o.name, "role": o.role, "hash": o.hash, "created": o.created}
                for o in sorted(ops.values(), key=lambda o: o.name)
            ],
        }
        write_file(self.path, json.dumps(doc, indent=2) + "\n", 0o600)

    def add(self, name: str, role: str, password: str) -> Operator:
        ops = self.load()
        check_operator_name(name)
        if name in ops:
            raise SetupError(f"operator {name!r} exists: use 'operator passwd' or 'remove'")
        op = Operator(name, check_role(role), hash_password(password), _now())
        ops[name] = op
        self.save(ops)
        return op

    def remove(self, name: str) -> None:
        ops = self.load()
        if ops.pop(name, None) is None:
            raise SetupError(f"no operator {name!r} in {self.path}")
        self.save(ops)

    def passwd(self, name: str, password: str) -> None:
        ops = self.load()
        if name not in ops:
            raise SetupError(f"no operator {name!r} in {self.path}")
        old = ops[name]
        ops[name] = Operator(name, old.role, hash_password(password), old.created)
        self.save(ops)

    def verify(self, name: str, password: str) -> Operator | None:
        """The operator when ``password`` is theirs; None otherwise (unknown names cost
        one hash too)."""
        from argon2.exceptions import InvalidHashError, VerificationError  # noqa: PLC0415

        op = self.load().get(name)
        if op is None:
            if self._dummy is None:
                self._dummy = _hasher().hash("no such operator")
            with contextlib.suppress(VerificationError):
                _hasher().verify(self._dummy, password)
            return None
        try:
            _hasher().verify(op.hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return op


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(
            f"password of {len(password)} characters: use at least {MIN_PASSWORD}",
            field="password",
        )
    return str(_hasher().hash(password))


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- command line ----------------------------------------------------------------------------
def register(sub: Any, common: Any) -> None:
    """``operator add|remove|list|passwd`` and ``console-cert`` under ``fieldterm provision``."""
    p = sub.add_parser(
        "operator",
        help="console operator accounts (argon2id) in the alert desk's directory",
        description="Accounts of 'fieldterm console', kept in DESK/operators.json.",
    )
    osub = p.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    for action, helptext in (
        ("add", "a new operator (password from --password-file or prompted)"),
        ("remove", "delete an operator"),
        ("passwd", "set a new password"),
        ("list", "names and roles"),
    ):
        s = osub.add_parser(action, help=helptext)
        s.add_argument(
            "--desk", required=True, type=Path, metavar="DIR", help="the alert desk's directory"
        )
        if action != "list":
            s.add_argument("name", help="operator name, e.g. ivanova")
        if action == "add":
            s.add_argument("--role", required=True, choices=ROLES)
        if action in ("add", "passwd"):
            s.add_argument(
                "--password-file",
                type=Path,
                metavar="FILE",
                help="file whose first line is the password (else prompted on a terminal)",
            )
        s.set_defaults(func=_operator_cmd)

    s = sub.add_parser(
        "console-cert",
        help="the console's HTTPS certificate, its own MQTT identity (alert-console) and "
        "fleet.json, into the desk's directory",
    )
    common(s, top=False)
    s.add_argument("--desk", required=True, type=Path, metavar="DIR")
    s.add_argument("--host", default="127.0.0.1", help="name or address operators' browsers use")
    s.add_argument(
        "--fleet-only", action="store_true", help="only rewrite fleet.json (after add/revoke)"
    )
    s.set_defaults(func=_console_cert)


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            lines = Path(args.password_file).read_text().splitlines()
        except OSError as exc:
            raise SetupError(
                f"cannot read --password-file {args.password_file}: {exc.strerror}"
            ) from exc
        if not lines or not lines[0]:
            raise SetupError(f"--password-file {args.password_file} is empty")
        return lines[0]
    if not sys.stdin.isatty():
        raise SetupError("no --password-file and no terminal to ask for a password on")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SetupError("the two passwords differ")
    return first


def _operator_cmd(args: argparse.Namespace) -> int:
    if not Path(args.desk).is_dir():
        raise SetupError(f"--desk {args.desk}: no such directory (provision alert-desk first)")
    ops = Operators(args.desk / OPERATORS_FILE)
    cmd = args.operator_command
    if cmd == "list":
        for o in sorted(ops.load().values(), key=lambda o: o.name):
            print(f"{o.name:<24} {o.role:<10} created {o.created}")
        return 0
    if cmd == "add":
        op = ops.add(args.name, args.role, _password(args))
        print(f"operator {op.name} ({op.role}) added to {ops.path}")
    elif cmd == "passwd":
        ops.passwd(args.name, _password(args))
        print(f"password of {args.name} changed")
    else:
        ops.remove(args.name)
        print(f"operator {args.name} removed (sessions end at their next request)")
    return 0


def fleet_doc(region: Any) -> dict[str, Any]:
    """Every terminal with its site, revocation and newest live certificate's expiry."""
    from .registry import iso  # noqa: PLC0415

    now = region.clock()
    rows = []
    for t in region.reg.terminals():
        live = [c for c in region.reg.certs(t.id) if c.status(now) in ("active", "grace")]
        keys = [k for k in region.reg.keys(t.id) if k.not_after is None or k.not_after > now]
        rows.append(
            {
                "id": t.id,
                "site": t.site,
                "revoked": t.revoked,
                "cert_not_after": iso(max(c.not_after for c in live)) if live else None,
                # the identity keys that sign the kiosk's telemetry
                "identity_keys": [k.public_b64 for k in keys],
            }
        )
    return {"version": 1, "region": region.region, "written": iso(now), "terminals": rows}


CONSOLE_MQTT = "console-mqtt"


def _console_identity(region: Any, desk: Path) -> None:
    """The console's MQTT client identity (CN ``alert-console``): issued once and kept in
    the registry (``region/console-mqtt``), copied to the desk's directory (key decrypted,
    mode 0600) on every run."""
    from . import broker_config as bc  # noqa: PLC0415
    from . import pki  # noqa: PLC0415

    rel = f"region/{CONSOLE_MQTT}"
    if not region.reg.path(rel + ".crt").exists():
        region.issue_client_file(bc.CONSOLE_CN, rel)
    write_file(desk / f"{CONSOLE_MQTT}.crt", region.reg.path(rel + ".crt").read_bytes(), 0o644)
    write_file(desk / f"{CONSOLE_MQTT}.key", pki.key_pem(region.load_key(rel + ".key")), 0o600)
    print(f"console MQTT identity ({bc.CONSOLE_CN}) written to {desk}/{CONSOLE_MQTT}.crt")


def _console_cert(args: argparse.Namespace) -> int:
    from . import pki  # noqa: PLC0415
    from .handlers import _after_change, _open  # noqa: PLC0415

    desk = Path(args.desk)
    if not (desk / "desk.toml").exists():
        raise SetupError(f"{desk} has no desk.toml: run 'provision alert-desk --out {desk}' first")
    with _open(args) as region:
        if not args.fleet_only:
            region.issue_server("console", args.host)
            write_file(
                desk / "console.crt", region.reg.path("region/console.crt").read_bytes(), 0o644
            )
            key = region.load_key("region/console.key")
            write_file(desk / "console.key", pki.key_pem(key), 0o600)
            print(f"console certificate for {args.host} written to {desk}/console.crt")
            _console_identity(region, desk)
            _after_change(region)  # every broker directory, and running brokers, learn it
        write_file(desk / FLEET_FILE, json.dumps(fleet_doc(region), indent=2) + "\n", 0o644)
        print(f"{desk / FLEET_FILE}: {len(region.reg.terminals())} terminal(s)")
    return 0
