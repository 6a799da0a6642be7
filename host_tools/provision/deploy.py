"""Broker directories: write one (``broker-config``) and keep every known one current.

A broker directory holds what the broker (and, for the regional broker, the regional
service) runs from. The registry remembers each directory it wrote, so ``add-terminal``,
``revoke``, ``rotate`` and ``refresh`` rewrite its ACL, CRL and terminals.json in place.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography import x509

from firmware.errors import SetupError

from . import broker_config as bc
from . import dynsec, pki, protokeys
from .atomic import write_file
from .authority import RegionAuthority as Region
from .bundle import MANIFEST, Bundle
from .registry import Deployment


@dataclass(frozen=True)
class BrokerResult:
    directory: Path
    host: str
    port: int
    notes: tuple[str, ...]


def _site_bridges(region: Region) -> list[bc.SiteBridge]:
    out = []
    for d in region.reg.deployments():
        if d.kind == "site" and d.site:
            up_host = region.reg.get(f"bridge:{d.site}:host") or ""
            up_port = int(region.reg.get(f"bridge:{d.site}:port") or 8883)
            out.append(bc.SiteBridge(d.site, up_host, up_port, _active(region, d.site)))
    return out


def _active(region: Region, site: str | None = None) -> tuple[str, ...]:
    return tuple(
        t.id for t in region.reg.terminals() if not t.revoked and (site is None or t.site == site)
    )


def _lane_grants(
    region: Region, site: str | None = None
) -> tuple[list[tuple[str, str]], list[bc.LaneAcl]]:
    """The annunciator's grants: (kiosk, site) pairs and panels (all sites, or one)."""
    from . import annunciator  # noqa: PLC0415 -- annunciator imports authority, as we do

    kiosks = [
        (t.id, t.site)
        for t in region.reg.terminals()
        if not t.revoked and t.site and (site is None or t.site == site)
    ]
    grants = [
        bc.LaneAcl(annunciator.panel_cn(p.id), p.id, p.site, p.lanes)
        for p in annunciator.panels(region)
        if not p.revoked and (site is None or p.site == site)
    ]
    return kiosks, grants


def _lane_acl(region: Region, site: str | None = None) -> str:
    """The annunciator's ACL lines (a site broker's ACL file)."""
    kiosks, grants = _lane_grants(region, site)
    if not kiosks and not grants:
        return ""
    return "\n" + "\n".join(bc.lane_acl_lines(region.region, kiosks, grants))


def render(region: Region, d: Deployment) -> None:
    """Rewrite the derived files of one broker directory from the registry."""
    crl = region.reg.path("ca/crl.pem").read_bytes()
    bc.write_broker_file(d.path / bc.CRL_FILE, crl, secret=False)
    if d.kind == "site":
        acl = bc.acl_text(region.region, _active(region, d.site), regional=False)
        acl += _lane_acl(region, d.site)
        bc.write_broker_file(d.path / bc.ACL_FILE, acl, secret=True)
        return
    lanes = bc.lane_dynsec(region.region, *_lane_grants(region))
    state = bc.dynsec_json(region.region, _active(region), _site_bridges(region), lanes)
    bc.write_broker_file(d.path / bc.DYNSEC_FILE, state, secret=True)
    (d.path / bc.ACL_FILE).unlink(missing_ok=True)  # from before dynamic security
    now = region.clock()
    rows = [(t.id, t.revoked, region.reg.keys(t.id)) for t in region.reg.terminals()]
    write_file(d.path / bc.TERMINALS_FILE, bc.terminals_json(region.region, rows, now), 0o644)
    desk_pub = region.reg.path("region", bc.ALERT_DESK_PUB)
    if desk_pub.exists():  # the regional service reloads it when it changes
        write_file(d.path / bc.ALERT_DESK_PUB, desk_pub.read_bytes(), 0o644)


def refresh_all(region: Region) -> tuple[list[Path], list[Path]]:
    """Render every recorded broker directory; returns (updated, missing)."""
    done, missing = [], []
    for d in region.reg.deployments():
        if (d.path / "mosquitto.conf").exists():
            render(region, d)
            done.append(d.path)
        else:
            missing.append(d.path)
    return done, missing


ADMIN_REL = f"region/{bc.BROKER_ADMIN_CN}"


def _admin(region: Region, d: Deployment) -> dynsec.Admin | None:
    """How to reach the control topic of the regional broker in ``d`` (None: a broker
    directory written before dynamic security, or a site broker)."""
    address = region.reg.get(f"admin:{d.path}")
    if d.kind != "regional" or not address:
        return None
    host, _, port = address.rpartition(":")
    region.load_key(ADMIN_REL + ".key")  # a wrong passphrase fails here, with its message
    return dynsec.Admin(
        host,
        int(port),
        d.path / "ca.crt",
        region.reg.path(ADMIN_REL + ".crt"),
        region.reg.path(ADMIN_REL + ".key"),
        region.passphrase,
    )


def apply_live(region: Region, d: Deployment) -> dynsec.Outcome | None:
    """Bring the running broker of ``d`` to the registry: revoked terminals lose their
    rights and their open sessions now, new ones are admitted (see :mod:`.dynsec`)."""
    admin = _admin(region, d)
    if admin is None:
        return None
    bridges = _site_bridges(region)
    lanes = bc.lane_dynsec(region.region, *_lane_grants(region))
    clients = bc.dynsec_clients(region.region, _active(region), bridges, lanes)
    revoked = [t.id for t in region.reg.terminals() if t.revoked]
    cmds = dynsec.sync_commands(clients, revoked, [bc.bridge_cn(b.site) for b in bridges])
    cmds += [  # revoked annunciator panels: their sessions closed, their rights gone
        {"command": "deleteClient", "username": cn} for cn in _revoked_panels(region)
    ]
    return dynsec.send(admin, cmds)


def _revoked_panels(region: Region) -> list[str]:
    from . import annunciator  # noqa: PLC0415 -- annunciator imports authority, as we do

    return [annunciator.panel_cn(p.id) for p in annunciator.panels(region) if p.revoked]


def apply_all(region: Region) -> list[tuple[Path, dynsec.Outcome]]:
    """:func:`apply_live` for every recorded regional broker directory."""
    out = []
    for d in region.reg.deployments():
        if (d.path / "mosquitto.conf").exists():
            outcome = apply_live(region, d)
            if outcome is not None:
                out.append((d.path, outcome))
    return out


def _sans(cert_file: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def retarget_bundles(region: Region, host: str, port: int, site: str | None = None) -> list[Path]:
    """Point bundles still on this machine at a new broker address (terminal.toml and the
    manifest): those of ``site``, or with ``site=None`` those not behind a site broker.
    Kiosks already installed need the new terminal.toml by hand."""
    changed = []
    bridged = {d.site for d in region.reg.deployments() if d.kind == "site"}
    for t in region.reg.terminals():
        if not t.bundle_path or (t.site != site if site else t.site in bridged):
            continue
        toml_path = Path(t.bundle_path) / "terminal.toml"
        try:
            doc = tomllib.loads(toml_path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if doc.get("terminal", {}).get("id") != t.id:
            continue
        doc["broker"]["host"], doc["broker"]["port"] = host, port
        text = toml_path.read_text().split("[terminal]")[0] + tomli_w.dumps(doc)
        write_file(toml_path, text, 0o644)
        b = Bundle()
        for line in (Path(t.bundle_path) / MANIFEST).read_text().splitlines():
            name = line.split("  ", 1)[1]
            b.add(name, (Path(t.bundle_path) / name).read_bytes())
        write_file(Path(t.bundle_path) / MANIFEST, b.manifest(), 0o644)
        changed.append(Path(t.bundle_path))
    return changed


def broker_config(
    region: Region,
    out: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    bind: str | None = None,
    user: str = "mosquitto",
    site: str | None = None,
    upstream: tuple[str, int] | None = None,
    service_port: int | None = None,
    max_connections: int = bc.MAX_CONNECTIONS,
) -> BrokerResult:
    """Write a broker directory: the regional broker (with the regional service's files),
    or with ``site`` a site broker bridged to ``upstream``."""
    out = Path(out).absolute()
    notes: list[str] = []
    old_host, old_port = region.broker_address
    host = host or (old_host if site is None else None)
    if host is None:
        raise SetupError("a site broker needs --host: the address its terminals connect to")
    port = port or (old_port if site is None else 8883)
    if not 1 <= max_connections <= bc.BROKER_NOFILE - bc.FD_MARGIN:
        raise SetupError(
            f"--max-connections {max_connections}: give 1 to "
            f"{bc.BROKER_NOFILE - bc.FD_MARGIN} (the unit's LimitNOFILE={bc.BROKER_NOFILE} "
            f"less {bc.FD_MARGIN} for the broker's own files)"
        )
    if site is not None and upstream is None:
        raise SetupError("--site-bridge needs --upstream HOST:PORT (the regional broker)")
    # Mosquitto started as root drops to ``user`` before reading its files: refuse a
    # directory that user cannot reach now, before anything is written, not at broker start.
    drops = os.geteuid() == 0 and user != "root"
    if drops and bc.unreachable_dirs(out, user):
        raise SetupError(bc.traversal_fix(out, user))
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create {out}: {exc.strerror}: pick a writable --out") from exc
    gid = bc.broker_group()
    if gid is not None:
        os.chown(out, -1, gid)
        out.chmod(0o750)
    if drops and bc.unreachable_dirs(out, user):
        # a parent just created under a strict umask: take back what was made, then refuse
        message = bc.traversal_fix(out, user)
        for p in created:
            p.rmdir()
        raise SetupError(message)
    if bind is None:
        bind = _ip_or_none(host)
        if bind is None:
            notes.append("listening on all addresses (--host is a name); narrow with --bind ADDR")
    name = "broker" if site is None else f"broker.{site}"
    with region.reg.transaction():
        crt = region.reg.path(f"region/{name}.crt")
        if not crt.exists() or host not in _sans(crt):
            region.issue_server(name, host)
            notes.append(f"issued a broker certificate for {host}")
        if site is not None:
            assert upstream is not None
            rel = f"region/{bc.bridge_cn(site)}"
            if not region.reg.path(rel + ".crt").exists():
                region.issue_client_file(bc.bridge_cn(site), rel)
            region.reg.set(f"bridge:{site}:host", upstream[0])
            region.reg.set(f"bridge:{site}:port", str(upstream[1]))
            region.reg.set(f"site:{site}:address", f"{host}:{port}")
            moved = retarget_bundles(region, host, port, site)
            if moved:
                notes.append(f"pointed {len(moved)} bundle(s) of site {site} at {host}:{port}")
        elif (host, port) != (old_host, old_port):
            region.reg.set("broker_host", host)
            region.reg.set("broker_port", str(port))
            moved = retarget_bundles(region, host, port)
            if moved:
                notes.append(
                    f"pointed {len(moved)} bundle(s) still on this machine at {host}:{port}"
                )
            notes.append(
                f"broker address is now {host}:{port}; kiosks already installed from older "
                "bundles keep the old address: re-provision them (rotate)"
            )
        reg = region.reg
        bc.write_broker_file(out / "ca.crt", reg.path("ca/chain.crt").read_bytes(), secret=False)
        bc.write_broker_file(
            out / "broker.crt", reg.path(f"region/{name}.crt").read_bytes(), secret=False
        )
        key = region.load_key(f"region/{name}.key")
        bc.write_broker_file(out / "broker.key", pki.key_pem(key), secret=True)
        if site is not None:
            rel = f"region/{bc.bridge_cn(site)}"
            bc.write_broker_file(
                out / "bridge.crt", reg.path(rel + ".crt").read_bytes(), secret=False
            )
            bc.write_broker_file(
                out / "bridge.key", pki.key_pem(region.load_key(rel + ".key")), secret=True
            )
        else:
            service_port = service_port or port + 1
            if not region.reg.path(ADMIN_REL + ".crt").exists():
                region.issue_client_file(bc.BROKER_ADMIN_CN, ADMIN_REL)
            region.reg.set(f"admin:{out}", f"127.0.0.1:{service_port}")
            _write_regional(region, out, "127.0.0.1", service_port)
        bc.prepare_data_dir(out, user)
        bridge = None
        if site is not None:
            assert upstream is not None
            bridge = bc.SiteBridge(site, upstream[0], upstream[1], _active(region, site))
        spec = bc.ListenerSpec(
            out, port, bind, user, service_port if site is None else None, max_connections
        )
        write_file(out / "mosquitto.conf", bc.mosquitto_conf(spec, bridge, region.region), 0o644)
        write_file(out / bc.UNIT_FILE, bc.systemd_unit(out), 0o644)
        d = Deployment(out, "site" if site else "regional", site)
        reg.add_deployment(d, region.clock())
        render(region, d)
        if site is not None:  # the regional broker must now let this bridge in
            for other in reg.deployments():
                if other.kind == "regional" and (other.path / "mosquitto.conf").exists():
                    render(region, other)
    if not drops and (blocked := bc.unreachable_parent(out, user)) is not None:
        notes.append(
            f"warning: user {user} cannot reach {out} ({blocked} has no x bit for it): if "
            f"mosquitto is started as root it drops to {user} and will fail to read its files"
        )
    if (fd_note := bc.fd_limit_note(max_connections)) is not None:
        notes.append(fd_note)
    return BrokerResult(out, host, port, tuple(notes))


def _ip_or_none(host: str) -> str | None:
    """Bind to the terminals' address when it is an IP literal (127.0.0.1 stays local)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _write_regional(region: Region, out: Path, host: str, port: int) -> None:
    reg = region.reg
    write_file(out / "regional.crt", reg.path("region/regional.crt").read_bytes(), 0o644)
    write_file(out / "regional.key", pki.key_pem(region.load_key("region/regional.key")), 0o600)
    for name in ("regional-kem", "regional-sign"):
        write_file(out / f"{name}.key", region.protocol_key_pem(f"{name}.key"), 0o600)
        write_file(out / f"{name}.pub", reg.path(f"region/{name}.pub").read_bytes(), 0o644)
    write_file(out / "index.key", reg.path("region/index.key").read_bytes(), 0o600)
    write_file(out / bc.OFFLINE_LIST_KEY_FILE, region.ensure_offline_list_key(), 0o600)
    write_file(out / bc.ALERT_DESK_PUB, region.ensure_alert_desk_key(), 0o644)
    write_file(out / "regional.toml", bc.regional_toml(region.region, host, port), 0o644)


def alert_desk(
    region: Region,
    out: Path,
    host: str | None = None,
    port: int | None = None,
    *,
    rotate: bool = False,
) -> Path:
    """The alert desk's directory: a TLS client identity (CN ``alert-desk``, which the ACL
    lets read the alert topic and nothing else), the desk's X25519 private key that opens
    the sealed alert batches, the regional signing key that signs each alert, and
    ``desk.toml`` for ``fieldterm alerts``. ``out`` must be new or empty.

    ``rotate`` (a desk machine lost or its key exposed): a new key pair and certificate;
    the old certificate goes into the CRL. As after ``revoke``, :func:`refresh_all` then
    gives every recorded broker directory the new CRL and public key (the CLI does it; the
    regional service picks the key up within seconds; Mosquitto needs a reload for the CRL).
    Batches sealed from then on open only with the new key.

    Nothing is lost to a failure (a wrong passphrase, say): the passphrase and the CA are
    checked before anything is written, the new keys are staged, and they replace the old
    ones in the registry only after the registry's transaction has committed."""
    out = Path(out).absolute()
    if out.exists() and any(out.iterdir()):
        raise SetupError(f"{out} is not empty: give a new directory for the alert desk")
    region.issuer()  # check first: a wrong passphrase or an expired CA fails here
    if region.reg.path("region/alert-desk.key").exists():
        region.protocol_key_pem("alert-desk.key")
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        out.chmod(0o700)  # an existing empty directory too: it will hold the desk's keys
    except OSError as exc:
        raise SetupError(f"cannot create {out}: {exc.strerror}: pick a writable --out") from exc
    b_host, b_port = region.broker_address
    reg = region.reg
    rel = "region/alert-desk-tls"
    staged: dict[str, tuple[bytes, int]] = {}
    plain: dict[str, bytes] = {}
    crl: bytes | None = None
    with reg.transaction():
        if rotate:
            now = region.clock()
            for c in reg.certs(bc.ALERT_DESK_CN):
                if c.revoked_at is None:
                    reg.revoke_cert(c.serial, now)
            staged, plain = _new_desk_identity(region)
            crl = region.sign_crl(write=False)
            desk_crt = staged["alert-desk-tls.crt"][0]
        else:
            region.ensure_alert_desk_key()
            if not reg.path(rel + ".crt").exists():
                region.issue_client_file(bc.ALERT_DESK_CN, rel)
            desk_crt = reg.path(rel + ".crt").read_bytes()
            plain = {
                "desk.key": pki.key_pem(region.load_key(rel + ".key")),
                "alert-desk.key": region.protocol_key_pem("alert-desk.key"),
            }
        write_file(out / "ca.crt", reg.path("ca/chain.crt").read_bytes(), 0o644)
        write_file(out / "desk.crt", desk_crt, 0o644)
        write_file(out / "desk.key", plain["desk.key"], 0o600)
        write_file(out / "alert-desk.key", plain["alert-desk.key"], 0o600)
        write_file(
            out / "regional-sign.pub", reg.path("region/regional-sign.pub").read_bytes(), 0o644
        )
        write_file(
            out / "desk.toml", bc.desk_toml(region.region, host or b_host, port or b_port), 0o644
        )
    # committed: only now do the new keys replace the old ones in the registry
    for name, (data, mode) in staged.items():
        write_file(reg.path("region", name), data, mode)
    if crl is not None:
        write_file(reg.path("ca/crl.pem"), crl)
    return out


def _new_desk_identity(region: Region) -> tuple[dict[str, tuple[bytes, int]], dict[str, bytes]]:
    """A new desk key pair and TLS identity (certificate recorded), not yet in place:
    (registry file name -> (bytes, mode), desk directory file name -> decrypted key)."""
    kem = protokeys.new_kem()
    key = pki.new_key()
    cert = region.issue_client_cert(bc.ALERT_DESK_CN, key)
    staged = {
        "alert-desk.key": (protokeys.private_pem(kem, region.passphrase), 0o600),
        bc.ALERT_DESK_PUB: (protokeys.public_pem(kem.public_key()), 0o644),
        "alert-desk-tls.crt": (pki.cert_pem(cert), 0o644),
        "alert-desk-tls.key": (pki.key_pem(key, region.passphrase), 0o600),
    }
    return staged, {"desk.key": pki.key_pem(key), "alert-desk.key": protokeys.private_pem(kem)}
