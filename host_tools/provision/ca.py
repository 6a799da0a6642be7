"""The region's CA and key store: loads (and checks) the issuing CA, issues the broker,
regional and bridge identities, signs the CRL. Base of :class:`authority.RegionAuthority`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.errors import SetupError

from . import pki, protokeys
from .atomic import write_file
from .registry import CertRecord, Registry, iso

Clock = Callable[[], dt.datetime]
CRL_DAYS = 365


def system_clock() -> dt.datetime:
    return pki.utcnow()


class RegionCA:
    """One region's CA and registry. ``passphrase`` unlocks the registry's private keys."""

    def __init__(self, reg: Registry, passphrase: bytes | None, clock: Clock = system_clock):
        self.reg = reg
        self.passphrase = passphrase
        self.clock = clock
        self._issuer: pki.Issuer | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.reg.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and CA -------------------------------------------------------------------
    @property
    def region(self) -> str:
        return self.reg.region

    @property
    def broker_address(self) -> tuple[str, int]:
        return self.reg.get("broker_host") or "127.0.0.1", int(self.reg.get("broker_port") or 8883)

    def _write_key(self, rel: str, key: pki.PrivateKey) -> None:
        write_file(self.reg.path(rel), pki.key_pem(key, self.passphrase), 0o600)

    def load_key(self, rel: str) -> pki.PrivateKey:
        self._need_passphrase(rel)
        return pki.load_key(
            self.reg.path(rel).read_bytes(), self.passphrase, str(self.reg.path(rel))
        )

    def _need_passphrase(self, what: str) -> None:
        if self.reg.get("encrypted") == "1" and not self.passphrase:
            raise SetupError(
                f"this registry's keys are encrypted ({what}): give the passphrase used at "
                "'init' with --passphrase-file FILE (or FIELDTERM_PASSPHRASE_FILE)"
            )

    def protocol_key_pem(self, name: str) -> bytes:
        """A regional protocol private key, decrypted, as PKCS#8 PEM for the regional host."""
        rel = f"region/{name}"
        self._need_passphrase(rel)
        try:
            key = serialization.load_pem_private_key(
                self.reg.path(rel).read_bytes(), self.passphrase or None
            )
        except (TypeError, ValueError) as exc:
            raise SetupError(
                f"wrong passphrase for {self.reg.path(rel)}: check --passphrase-file"
            ) from exc
        return key.private_bytes(protokeys.PEM, protokeys.PKCS8, serialization.NoEncryption())

    def issuer(self) -> pki.Issuer:
        """The issuing CA, checked for expiry against the clock."""
        if self._issuer is None:
            cert = x509.load_pem_x509_certificate(self.reg.path("ca/issuing.crt").read_bytes())
            self._issuer = pki.Issuer(cert, self.load_key("ca/issuing.key"))
        if self.clock() >= self._issuer.cert.not_valid_after_utc:
            raise SetupError(
                f"the region's issuing CA expired on {iso(self._issuer.cert.not_valid_after_utc)}: "
                "nothing can be issued or revoked with it. Create a new region CA "
                "('fieldterm provision --registry NEWDIR init ...') and re-provision the terminals"
            )
        return self._issuer

    def _record(self, subject: str, cert: x509.Certificate) -> None:
        self.reg.add_cert(
            CertRecord(
                cert.serial_number,
                subject,
                pki.cert_pem(cert).decode(),
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
                self.clock(),
                None,
                None,
            )
        )

    def issue_server(self, name: str, host: str) -> x509.Certificate:
        """(Re)issue the broker's server certificate for 127.0.0.1, localhost and ``host``."""
        issuer = self.issuer()
        key = pki.new_key()
        hosts = list(dict.fromkeys(["127.0.0.1", "localhost", host]))
        cert = pki.issue(
            issuer, name, key.public_key(), server=True, hosts=hosts, not_before=self.clock()
        )
        self._write_key(f"region/{name}.key", key)
        write_file(
            self.reg.path(f"region/{name}.crt"), pki.cert_pem(cert) + pki.cert_pem(issuer.cert)
        )
        self._record(name, cert)
        return cert

    def issue_client_cert(self, cn: str, key: pki.PrivateKey) -> x509.Certificate:
        """A TLS client certificate for ``key``, recorded; the caller places the files."""
        cert = pki.issue(self.issuer(), cn, key.public_key(), client=True, not_before=self.clock())
        self._record(cn, cert)
        return cert

    def issue_client_file(self, cn: str, rel: str) -> x509.Certificate:
        """A TLS client identity kept in the registry (regional service, site bridges)."""
        key = pki.new_key()
        cert = pki.issue(self.issuer(), cn, key.public_key(), client=True, not_before=self.clock())
        self._write_key(f"{rel}.key", key)
        write_file(self.reg.path(f"{rel}.crt"), pki.cert_pem(cert))
        self._record(cn, cert)
        return cert

    def sign_crl(self, *, write: bool = True) -> bytes:
        """Re-sign the CRL: revoked certificates plus rotated ones whose grace has ended.

        ``write=False`` only returns it, for callers that place it last (see :meth:`rotate`).
        """
        now = self.clock()
        listed = [c for c in self.reg.certs() if c.in_crl(now)]
        number = int(self.reg.get("crl_number") or 0) + 1
        crl = pki.make_crl(
            self.issuer(),
            [c.serial for c in listed],
            days=CRL_DAYS,
            number=number,
            now=now,
            revoked_at={c.serial: (c.revoked_at or c.revoke_after or now) for c in listed},
        )
        pem = pki.crl_pem(crl)
        self.reg.set("crl_number", str(number))
        self.reg.set("crl_next_update", iso(now + dt.timedelta(days=CRL_DAYS)))
        if write:
            write_file(self.reg.path("ca/crl.pem"), pem)
        return pem
