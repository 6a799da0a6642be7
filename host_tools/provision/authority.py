"""A region's provisioning authority: its CA (:class:`~.ca.RegionCA`) plus the operations
on its registry: init, terminals, revocation, rotation.

Every operation validates its inputs first, stages files, writes the registry in one
SQLite transaction and only then moves files into place, so a failure leaves nothing
half-done. Time comes from an injected clock (tests move it past grace periods and CA
expiry without sleeping).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from firmware.errors import SetupError
from firmware.protocol import keys

from . import pki, protokeys
from .atomic import write_file
from .bundle import Bundle, TerminalSettings, terminal_toml, write_bundle
from .ca import Clock, RegionCA, system_clock
from .registry import (
    RESERVED_IDS,
    IdentityKey,
    Registry,
    Terminal,
    check_name,
    iso,
)
from .sitekey import LANE_KEY_FILE, ensure_site_key

TERMINAL_CERT_DAYS = 825
#: The offline-list key in the registry (docs/offline-list.md, "Keys").
OFFLINE_LIST_KEY = "region/offline-list.key"


@dataclass(frozen=True)
class BundleTarget:
    """Where a bundle goes: a directory, or a mounted SD-card boot partition."""

    out: Path | None = None
    sd_card: Path | None = None


@dataclass(frozen=True)
class TerminalOptions:
    site: str | None = None
    language: str | None = None  # None: as before (rotate), else "en"
    scanner_port: str | None = None  # None: as before (rotate), else /dev/ttyUSB0
    csr_pem: bytes | None = None
    csr_source: str = "--csr"
    identity_pub_pem: bytes | None = None


class RegionAuthority(RegionCA):
    """A region's provisioning authority: its CA (see :class:`RegionCA`) plus the terminal
    operations (enrol, revoke, rotate) that the provision handlers and deploy call."""

    @classmethod
    def open(
        cls, directory: Path, passphrase: bytes | None = None, clock: Clock = system_clock
    ) -> RegionAuthority:
        return cls(Registry.open(directory), passphrase, clock)

    @classmethod
    def init(
        cls,
        directory: Path,
        region: str,
        *,
        passphrase: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 8883,
        clock: Clock = system_clock,
    ) -> RegionAuthority:
        """Create the region: root + issuing CA, broker and regional identities, protocol keys."""
        check_name(region, "region")
        directory = Path(directory)
        fresh = not directory.exists() or not any(directory.iterdir())
        reg = Registry.create(directory)
        self = cls(reg, passphrase, clock)
        try:
            root = pki.make_root(f"fieldterm {region} root")
            issuing = pki.make_intermediate(root, f"fieldterm {region} issuing CA")
            self._issuer = issuing
            self._write_key("ca/root.key", root.key)
            write_file(reg.path("ca/root.crt"), pki.cert_pem(root.cert))
            self._write_key("ca/issuing.key", issuing.key)
            write_file(reg.path("ca/issuing.crt"), pki.cert_pem(issuing.cert))
            write_file(
                reg.path("ca/chain.crt"), pki.cert_pem(issuing.cert) + pki.cert_pem(root.cert)
            )
            kem, sign = protokeys.new_kem(), protokeys.new_identity()
            write_file(
                reg.path("region/regional-kem.key"), protokeys.private_pem(kem, passphrase), 0o600
            )
            write_file(
                reg.path("region/regional-sign.key"), protokeys.private_pem(sign, passphrase), 0o600
            )
            write_file(reg.path("region/regional-kem.pub"), protokeys.public_pem(kem.public_key()))
            write_file(
                reg.path("region/regional-sign.pub"), protokeys.public_pem(sign.public_key())
            )
            write_file(reg.path("region/index.key"), protokeys.new_secret_hex() + "\n", 0o600)
            write_file(reg.path(OFFLINE_LIST_KEY), protokeys.new_secret_hex() + "\n", 0o600)
            self.ensure_alert_desk_key()
            with reg.transaction():
                reg.set("region", region)
                reg.set("created", iso(clock()))
                reg.set("broker_host", host)
                reg.set("broker_port", str(port))
                reg.set("encrypted", "1" if passphrase else "0")
                reg.set("crl_number", "0")
                self.issue_server("broker", host)
                self.issue_client_file("regional", "region/regional")
                self.sign_crl()
        except BaseException:
            reg.close()
            if fresh:  # nothing half-made stays behind to block the next attempt
                shutil.rmtree(reg.dir, ignore_errors=True)
            raise
        return self

    # -- alert desk ----------------------------------------------------------------------
    def ensure_alert_desk_key(self) -> bytes:
        """The alert desk's X25519 key pair (hit alerts are sealed to it), made once; for a
        registry from before alerts were sealed it is made on first use. Returns the public
        key PEM."""
        pub = self.reg.path("region/alert-desk.pub")
        if not pub.exists():
            key = protokeys.new_kem()
            write_file(
                self.reg.path("region/alert-desk.key"),
                protokeys.private_pem(key, self.passphrase),
                0o600,
            )
            write_file(pub, protokeys.public_pem(key.public_key()))
        return pub.read_bytes()

    # -- offline list --------------------------------------------------------------------
    def ensure_offline_list_key(self) -> bytes:
        """The region's offline-list key file (64 hex characters, the same on the regional
        and in every bundle), made once; a registry from before the offline list gets it on
        first use, said once on stderr. Returns the file's bytes."""
        path = self.reg.path(OFFLINE_LIST_KEY)
        if not path.exists():
            write_file(path, protokeys.new_secret_hex() + "\n", 0o600)
            print(
                f"note: this registry had no offline-list key: made {path}; kiosks provisioned "
                "before now need a new bundle (rotate) to use the offline list",
                file=sys.stderr,
            )
        return path.read_bytes()

    # -- terminals ---------------------------------------------------------------------
    def _new_identity(self, tid: str, opts: TerminalOptions, bundle: Bundle) -> None:
        """TLS certificate and identity key for ``tid``: recorded, and added to ``bundle``."""
        issuer = self.issuer()
        if opts.csr_pem is not None:
            csr = pki.load_csr(opts.csr_pem, opts.csr_source)
            cn = pki.csr_common_name(csr)
            if cn not in (None, tid):
                raise SetupError(
                    f"{opts.csr_source}: the request is for CN={cn!r}, not {tid!r}: make the "
                    f"request on the device with CN={tid}"
                )
            pub = csr.public_key()
            assert isinstance(pub, ec.EllipticCurvePublicKey)
            cert = pki.issue(
                issuer, tid, pub, client=True, days=TERMINAL_CERT_DAYS, not_before=self.clock()
            )
        else:
            key = pki.new_key()
            cert = pki.issue(
                issuer,
                tid,
                key.public_key(),
                client=True,
                days=TERMINAL_CERT_DAYS,
                not_before=self.clock(),
            )
            bundle.add("client.key", pki.key_pem(key), secret=True)
        bundle.add("client.crt", pki.cert_pem(cert))
        self._record(tid, cert)
        if opts.identity_pub_pem is not None:
            ident_pub = protokeys.load_ed25519_public(opts.identity_pub_pem, "--identity-pub")
        else:
            ident = protokeys.new_identity()
            ident_pub = ident.public_key()
            bundle.add("identity.key", protokeys.private_pem(ident), secret=True)
        self.reg.add_key(IdentityKey(tid, keys.ed25519_public_b64(ident_pub), self.clock(), None))

    def _bundle(self, t: Terminal, opts: TerminalOptions) -> Bundle:
        host, port = self.broker_address
        site_broker = self.reg.get(f"site:{t.site}:address") if t.site else None
        if site_broker:  # the site has its own broker, bridged to the regional one
            h, _, p = site_broker.rpartition(":")
            host, port = h, int(p)
        language = opts.language or self.reg.get(f"terminal:{t.id}:language") or "en"
        scanner = opts.scanner_port or self.reg.get(f"terminal:{t.id}:scanner") or "/dev/ttyUSB0"
        self.reg.set(f"terminal:{t.id}:language", language)
        self.reg.set(f"terminal:{t.id}:scanner", scanner)
        b = Bundle()
        settings = TerminalSettings(t.id, self.region, host, port, t.site, language, scanner)
        b.add("terminal.toml", terminal_toml(settings))
        b.add("ca.crt", self.reg.path("ca/chain.crt").read_bytes())
        b.add("regional-kem.pub", self.reg.path("region/regional-kem.pub").read_bytes())
        b.add("regional-sign.pub", self.reg.path("region/regional-sign.pub").read_bytes())
        b.add("audit.key", t.audit_key + "\n", secret=True)
        b.add("offline-list.key", self.ensure_offline_list_key(), secret=True)
        if t.site:  # the site's annunciator panels open its lane frames (docs/annunciator.md)
            b.add(LANE_KEY_FILE, ensure_site_key(self.reg, t.site), secret=True)
        desk_pub = self.reg.path("region", "alert-desk.pub")
        if (
            desk_pub.exists()
        ):  # the kiosk seals its health to the desk (firmware/agent/telemetry.py)
            b.add("alert-desk.pub", desk_pub.read_bytes())
        return b

    def check_new_terminal(self, tid: str, opts: TerminalOptions) -> None:
        """Refuse a bad, reserved or existing id or a bad site before anything is made."""
        check_name(tid, "terminal id")
        if tid in RESERVED_IDS:
            raise SetupError(f"{tid!r} is reserved for the region's own services: pick another id")
        if opts.site:
            check_name(opts.site, "site")
        existing = self.reg.terminal(tid)
        if existing is not None:
            state = "revoked" if existing.revoked else "active"
            raise SetupError(
                f"terminal {tid!r} already exists ({state}, since {iso(existing.created)}): "
                f"to give it new keys use 'rotate {tid}'; for a new kiosk pick another id"
            )

    def enrol(self, tid: str, opts: TerminalOptions) -> Bundle:
        """Record a new terminal (row, certificate, identity key) and return its bundle, not
        yet written. Call inside a registry transaction, after :meth:`check_new_terminal`:
        ``add-terminal`` writes one bundle, ``add-terminals`` (:mod:`.bulk`) a batch."""
        t = Terminal(tid, opts.site, self.clock(), None, protokeys.new_secret_hex(), None)
        self.reg.add_terminal(t)
        bundle = self._bundle(t, opts)
        self._new_identity(tid, opts, bundle)
        return bundle

    def add_terminal(self, tid: str, target: BundleTarget, opts: TerminalOptions) -> Path:
        self.check_new_terminal(tid, opts)
        with self.reg.transaction():
            bundle = self.enrol(tid, opts)
            final = write_bundle(bundle, out=target.out, sd_card=target.sd_card)
            self.reg.set_bundle_path(tid, str(final))
        return final

    def terminal_or_fail(self, tid: str) -> Terminal:
        check_name(tid, "terminal id")
        t = self.reg.terminal(tid)
        if t is None:
            raise SetupError(
                f"no terminal {tid!r} in this registry: see 'fieldterm provision list'"
            )
        return t

    def revoke(self, tid: str) -> None:
        """Cut a terminal off: all its certificates into the CRL, out of the ACL, revoked
        in terminals.json. Takes effect when the broker reloads (SIGHUP)."""
        t = self.terminal_or_fail(tid)
        now = self.clock()
        self.issuer()  # fail early (passphrase, expiry) before touching anything
        with self.reg.transaction():
            if not t.revoked:
                self.reg.mark_revoked(tid, now)
            for c in self.reg.certs(tid):
                self.reg.revoke_cert(c.serial, now)
            self.sign_crl()

    def rotate(
        self, tid: str, target: BundleTarget, opts: TerminalOptions, grace_hours: float
    ) -> Path:
        """New certificate and keys. The old identity key stays in terminals.json until
        now + grace; the old certificate is revoked at once when grace is 0, else it goes
        into the CRL at the first 'refresh' (or revoke/rotate) after the grace ends."""
        t = self.terminal_or_fail(tid)
        if t.revoked:
            raise SetupError(
                f"terminal {tid!r} is revoked: a revoked identity is not brought back; "
                "provision the kiosk under a new id with add-terminal"
            )
        if grace_hours < 0:
            raise SetupError("--grace must be 0 or more hours")
        now = self.clock()
        until = now + dt.timedelta(hours=grace_hours)
        opts = dataclasses.replace(opts, site=t.site)
        with self.reg.transaction():
            old = [
                c for c in self.reg.certs(tid) if c.revoked_at is None and c.revoke_after is None
            ]
            self.reg.expire_keys(tid, until)
            for c in old:
                if grace_hours == 0:
                    self.reg.revoke_cert(c.serial, now)
                else:
                    self.reg.revoke_cert_after(c.serial, until)
            bundle = self._bundle(t, opts)
            self._new_identity(tid, opts, bundle)
            crl = self.sign_crl(write=False)
            final = write_bundle(bundle, out=target.out, sd_card=target.sd_card)
            write_file(self.reg.path("ca/crl.pem"), crl)
            self.reg.set_bundle_path(tid, str(final))
        return final
