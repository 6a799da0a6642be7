"""The command handlers of ``fieldterm provision``, one per action: each opens the region,
calls the operation and prints what a technician needs to know next. Never prints a
private key or a secret; public keys by fingerprint.

:mod:`.cli` only builds the parser; each action's subparser names its handler here with
``set_defaults(func=...)``, imported when the command runs (this module loads the
cryptography stack, which registering the command must not).
"""

from __future__ import annotations

import argparse
import getpass
import json
import stat
import sys
from pathlib import Path
from typing import Any

from firmware.errors import SetupError

from . import annunciator, deploy, protokeys, sitekey_rotation
from .authority import BundleTarget, RegionAuthority, TerminalOptions
from .registry import iso

#: Actions that only read the registry: no passphrase prompt for them.
_READ_ONLY = ("list", "show")


# -- opening the registry ------------------------------------------------------------------
def _check_private(path: Path) -> None:
    """Refuse a passphrase file others may read: the passphrase unlocks the region's CA."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise SetupError(f"cannot read --passphrase-file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise SetupError(
            f"--passphrase-file {path} has mode {mode:04o}: group or others may read it, and "
            f"it unlocks the region's CA keys: run 'chmod 600 {path}' (owner only)"
        )


def _passphrase(args: argparse.Namespace) -> bytes | None:
    f = getattr(args, "passphrase_file", None)
    if f:
        _check_private(Path(f))
        try:
            text = Path(f).read_text().splitlines()
        except OSError as exc:
            raise SetupError(f"cannot read --passphrase-file {f}: {exc.strerror}") from exc
        if not text or not text[0]:
            raise SetupError(
                f"--passphrase-file {f} is empty: put the passphrase on its first line"
            )
        return text[0].encode()
    return None


def _interactive_passphrase() -> bytes | None:
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("registry passphrase: ").encode() or None


def _new_passphrase(args: argparse.Namespace) -> bytes | None:
    """``init``'s passphrase: from the file; else asked for twice on a terminal; else
    none only with ``--no-passphrase``. Never silently unencrypted CA keys."""
    phr = _passphrase(args)
    if phr is not None:
        return phr
    if args.no_passphrase:
        return None
    if not sys.stdin.isatty():
        raise SetupError(
            "no passphrase for the region's CA keys: give --passphrase-file FILE (mode 0600), "
            "run on a terminal to be asked for one, or pass --no-passphrase to leave the keys "
            "unencrypted (a throwaway test region only)"
        )
    first = getpass.getpass("new registry passphrase: ")
    if not first:
        raise SetupError("empty passphrase: type one, or pass --no-passphrase")
    if getpass.getpass("the same passphrase again: ") != first:
        raise SetupError("the two passphrases differ: nothing was created; run init again")
    return first.encode()


def _registry(args: argparse.Namespace) -> Path:
    if not args.registry:
        raise SetupError("no registry: give --registry DIR or set FIELDTERM_REGISTRY")
    return Path(args.registry)


def _open(args: argparse.Namespace) -> RegionAuthority:
    """The region of ``--registry``, unlocked with the passphrase file, or (for an action
    that signs with an encrypted key) a passphrase asked for on the terminal."""
    phr = _passphrase(args)
    region = RegionAuthority.open(_registry(args), phr)
    if (
        phr is None
        and region.reg.get("encrypted") == "1"
        and args.provision_command not in _READ_ONLY
    ):
        region.passphrase = _interactive_passphrase()
    return region


# -- output ----------------------------------------------------------------------------------
def mode_listing(directory: Path) -> list[str]:
    """``ls -l``-like lines for a bundle or broker directory (modes, sizes, names)."""
    rows = []
    for p in sorted(directory.iterdir()):
        st = p.lstat()
        rows.append(f"{stat.filemode(st.st_mode)} {st.st_size:6d}  {p.name}")
    return rows


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_listing(what: str, directory: Path) -> None:
    print(what)
    for line in mode_listing(directory):
        print(f"  {line}")


# -- handlers ----------------------------------------------------------------------------------
def init(args: argparse.Namespace) -> int:
    """``init``: create the region's registry, CA and service identities."""
    passphrase = _new_passphrase(args)
    with RegionAuthority.init(
        _registry(args), args.region, passphrase=passphrase, host=args.host, port=args.port
    ) as region:
        print(f"region {region.region} created in {region.reg.dir}")
        print(
            f"  CA keys {'encrypted with the passphrase' if passphrase else 'NOT encrypted (--no-passphrase)'}"
        )
        print(f"  broker address for terminals: {args.host}:{args.port}")
        print(
            f"  move {region.reg.path('ca/root.key')} to offline storage; it is needed only to renew the issuing CA"
        )
    return 0


def _target(args: argparse.Namespace) -> BundleTarget:
    return BundleTarget(out=args.out, sd_card=args.sd_card)


def _options(args: argparse.Namespace) -> TerminalOptions:
    def read(p: Path | None, what: str) -> bytes | None:
        if p is None:
            return None
        try:
            return p.read_bytes()
        except OSError as exc:
            raise SetupError(f"cannot read {what} {p}: {exc.strerror}") from exc

    return TerminalOptions(
        getattr(args, "site", None),
        args.language,
        args.scanner_port,
        read(args.csr, "--csr"),
        f"--csr {args.csr}",
        read(args.identity_pub, "--identity-pub"),
    )


def _after_change(region: RegionAuthority) -> None:
    done, missing = deploy.refresh_all(region)
    for d in done:
        print(
            f"updated {d} (ACL, CRL, terminals.json): reload the broker: kill -HUP $(pidof mosquitto)"
        )
    for d in missing:
        print(f"note: broker directory {d} is gone; skipped")
    _apply_live(region)


def _apply_live(region: RegionAuthority) -> None:
    """Tell each running regional broker now (see :func:`deploy.apply_live`)."""
    for d, outcome in deploy.apply_all(region):
        if not outcome.reached:
            print(
                f"note: broker of {d} not reached ({outcome.why}): its "
                "dynamic-security.json takes effect when mosquitto starts; if it is running, "
                "restart it now, or revoked terminals keep their open sessions",
                file=sys.stderr,
            )
        elif outcome.errors:
            raise SetupError(
                f"the broker of {d} refused changes: {'; '.join(outcome.errors)}: restart "
                "mosquitto to load dynamic-security.json"
            )
        else:
            print(
                f"applied to the running broker of {d} (open sessions of revoked terminals closed)"
            )


def add_terminal(args: argparse.Namespace) -> int:
    """``add-terminal``: a new terminal identity and its bundle."""
    with _open(args) as region:
        path = region.add_terminal(args.id, _target(args), _options(args))
        print(f"terminal {args.id} added to region {region.region}")
        _print_listing(f"bundle written to {path}:", path)
        _after_change(region)
    return 0


def add_terminals(args: argparse.Namespace) -> int:
    """``add-terminals``: many terminals, their bundles in ``--out``/<id>, in batches."""
    import time  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from . import bulk  # noqa: PLC0415

    ids = bulk.terminal_ids(args.prefix, args.count, args.start, args.digits)
    opts = TerminalOptions(args.site, args.language, args.scanner_port)
    t0 = time.monotonic()
    with _open(args) as region:
        with tqdm(
            total=len(ids), unit="terminal", desc="add-terminals", file=sys.stderr,
            disable=args.no_progress,
        ) as bar:  # fmt: skip
            r = bulk.add_terminals(region, ids, args.out, opts, batch_size=args.batch_size,
                                   progress=bar.update)  # fmt: skip
        made = time.monotonic() - t0
        site = f" at site {args.site}" if args.site else ""
        print(
            f"{len(r.ids)} terminals{site} added to region {region.region} in {made:.1f} s "
            f"({r.batches} batch(es)): {r.ids[0]} ... {r.ids[-1]}"
        )
        print(f"bundles written to {r.out}/<id>")
        _after_change(region)
    return 0


def rotate(args: argparse.Namespace) -> int:
    """``rotate``: a new certificate and identity key; the old ones for a grace period."""
    with _open(args) as region:
        path = region.rotate(args.id, _target(args), _options(args), args.grace)
        print(f"terminal {args.id} has a new certificate and identity key")
        if args.grace:
            print(
                f"  the old ones keep working for {args.grace:g} h; run 'refresh' after that to revoke the old certificate"
            )
        else:
            print("  the old certificate is revoked now")
        _print_listing(f"bundle written to {path}:", path)
        _after_change(region)
    return 0


def add_annunciator(args: argparse.Namespace) -> int:
    """``add-annunciator``: a supervisor's panel and its directory."""
    lanes = [x.strip() for x in args.lanes.split(",")]
    with _open(args) as region:
        path = annunciator.add_annunciator(region, args.id, args.site, lanes, args.out)
        print(f"annunciator {args.id} added for site {args.site}: lanes {', '.join(lanes)}")
        _print_listing(f"panel directory written to {path}:", path)
        _after_change(region)
    return 0


def rotate_site_key(args: argparse.Namespace) -> int:
    """``rotate-site-key``: one step of a site's lane key rotation."""
    step = "finish" if args.finish else "switch" if args.switch else "start"
    with _open(args) as region:
        for line in sitekey_rotation.rotate_site_key(region, args.site, step).report():
            print(line)
    return 0


def _site_key_note(site: str) -> None:
    print(
        f"  it holds site {site}'s lane key: run 'rotate-site-key --site {site}' (three "
        "steps) so that it cannot read or forge the site's lane frames"
    )


def revoke(args: argparse.Namespace) -> int:
    """``revoke``: cut a terminal (or an annunciator panel) off (CRL, ACL, terminals.json)."""
    with _open(args) as region:
        panel = annunciator.find(region, args.id)
        if region.reg.terminal(args.id) is None and panel:
            annunciator.revoke(region, args.id)
            print(f"annunciator {args.id} revoked: certificate in the CRL, removed from the ACL")
            _site_key_note(panel.site)
            _after_change(region)
            return 0
        region.revoke(args.id)
        print(
            f"terminal {args.id} revoked: certificate in the CRL, removed from the ACL, revoked in terminals.json"
        )
        t = region.reg.terminal(args.id)
        if t is not None and t.site:
            _site_key_note(t.site)
        _after_change(region)
    return 0


def refresh(args: argparse.Namespace) -> int:
    """``refresh``: re-sign the CRL (ends grace periods) and rewrite broker directories."""
    with _open(args) as region:
        region.issuer()
        with region.reg.transaction():
            region.sign_crl()
        print(f"CRL re-signed (next update {region.reg.get('crl_next_update')})")
        _after_change(region)
    return 0


def broker_config(args: argparse.Namespace) -> int:
    """``broker-config``: mosquitto.conf, ACL, CRL and regional.toml in one directory."""
    upstream = _upstream(args.upstream) if args.upstream else None
    with _open(args) as region:
        r = deploy.broker_config(
            region,
            args.out,
            host=args.host,
            port=args.port,
            bind=args.bind,
            user=args.user,
            site=args.site_bridge,
            upstream=upstream,
            service_port=args.service_port,
            max_connections=args.max_connections,
        )
        if args.site_bridge is not None:  # the running regional broker must admit the bridge
            _apply_live(region)
    _print_listing(f"broker directory {r.directory} for {r.host}:{r.port}:", r.directory)
    for n in r.notes:
        print(n)
    print(f"run: mosquitto -c {r.directory / 'mosquitto.conf'}")
    if args.site_bridge is None:
        print(f"and: fieldterm regional --config {r.directory / 'regional.toml'}")
    return 0


def alert_desk(args: argparse.Namespace) -> int:
    """``alert-desk``: the alert desk's directory (TLS identity, the key that opens alerts)."""
    with _open(args) as region:
        out = deploy.alert_desk(region, args.out, args.host, args.port, rotate=args.rotate)
        if args.rotate:
            print(
                "alert desk rotated: the old certificate is in the CRL and the old desk key "
                "opens no new alert; reload mosquitto (kill -HUP) and delete the old desk "
                "directory"
            )
            _after_change(region)
        _print_listing(f"alert desk directory {out} for region {region.region}:", out)
    print(f"run: fieldterm alerts --config {out / 'desk.toml'}")
    print("keep alert-desk.key on the desk's machine only: it opens every hit alert")
    return 0


def _upstream(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SetupError(f"--upstream {text!r}: write HOST:PORT, e.g. regional.example:8883")
    return host, int(port)


def _terminal_info(region: RegionAuthority, tid: str) -> dict[str, Any]:
    t = region.terminal_or_fail(tid)
    now = region.clock()
    certs = region.reg.certs(tid)
    return {
        "id": t.id,
        "site": t.site,
        "status": "revoked" if t.revoked else "active",
        "created": iso(t.created),
        "revoked_at": iso(t.revoked_at) if t.revoked_at else None,
        "bundle": t.bundle_path,
        "certificates": [
            {
                "serial": format(c.serial, "x"),
                "not_after": iso(c.not_after),
                "status": c.status(now),
                "revoke_after": iso(c.revoke_after) if c.revoke_after else None,
            }
            for c in certs
        ],
        "identity_keys": [
            {
                "fingerprint": protokeys.fingerprint(k.public_b64),
                "created": iso(k.created),
                "not_after": iso(k.not_after) if k.not_after else None,
                "live": k.not_after is None or k.not_after > now,
            }
            for k in region.reg.keys(tid)
        ],
    }


def list_terminals(args: argparse.Namespace) -> int:
    """``list``: terminals, their state and expiry."""
    with _open(args) as region:
        return _list(region, args.json)


def show(args: argparse.Namespace) -> int:
    """``show``: one terminal's certificates, keys, bundle and revocation."""
    with _open(args) as region:
        return _show(region, args.id, args.json)


def _list(region: RegionAuthority, as_json: bool) -> int:
    rows = [_terminal_info(region, t.id) for t in region.reg.terminals()]
    if as_json:
        print_json({"region": region.region, "terminals": rows})
        return 0
    print(
        f"region {region.region}; CRL #{region.reg.get('crl_number')} valid until {region.reg.get('crl_next_update')}"
    )
    print(f"{'ID':<24} {'SITE':<12} {'STATUS':<8} {'CERT EXPIRES':<21} KEYS")
    for r in rows:
        live = [c for c in r["certificates"] if c["status"] in ("active", "grace")]
        exp = max((c["not_after"] for c in live), default="-")
        keys = sum(1 for k in r["identity_keys"] if k["live"])
        print(f"{r['id']:<24} {r['site'] or '-':<12} {r['status']:<8} {exp:<21} {keys}")
    return 0


def _show(region: RegionAuthority, tid: str, as_json: bool) -> int:
    info = _terminal_info(region, tid)
    if as_json:
        print_json(info)
        return 0
    print(f"terminal {info['id']} (region {region.region}, site {info['site'] or '-'})")
    print(
        f"  status:  {info['status']}"
        + (f" since {info['revoked_at']}" if info["revoked_at"] else "")
    )
    print(f"  created: {info['created']}")
    print(f"  bundle:  {info['bundle'] or '-'}")
    print("  certificates (serial, expires, status):")
    for c in info["certificates"]:
        extra = f" until {c['revoke_after']}" if c["status"] == "grace" else ""
        print(f"    {c['serial']}  {c['not_after']}  {c['status']}{extra}")
    print("  identity keys (sha256 fingerprint, created, valid until):")
    for k in info["identity_keys"]:
        print(
            f"    {k['fingerprint']}  {k['created']}  {k['not_after'] or 'open'}{'' if k['live'] else ' (expired)'}"
        )
    return 0
