"""X.509 building blocks for the region's PKI: an offline root, an issuing intermediate,
server and client certificates, and a CRL.

Keys are P-256 ECDSA: Mosquitto's OpenSSL accepts them everywhere, and they are fast on a Pi.
Everything here is pure (objects in, objects out); writing files is the caller's job.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.errors import SetupError

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issuer:
    """A CA that can sign: its certificate and private key."""

    cert: x509.Certificate
    key: PrivateKey


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_root(cn: str, *, days: int = 3650, key: PrivateKey | None = None) -> Issuer:
    key = key or new_key()
    now = utcnow()
    name = _name(cn, "fieldterm")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(cert, key)


def make_intermediate(
    root: Issuer, cn: str, *, days: int = 1825, key: PrivateKey | None = None
) -> Issuer:
    key = key or new_key()
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, "fieldterm"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), root.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .sign(root.key, hashes.SHA256())
    )
    return Issuer(cert, key)


def issue(
    issuer: Issuer,
    cn: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    server: bool = False,
    client: bool = False,
    hosts: Sequence[str] = (),
    days: int = 397,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """Issue an end-entity certificate. ``hosts`` are DNS names or IP addresses (server SANs)."""
    now = not_before or utcnow()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), issuer.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if hosts:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer.key, hashes.SHA256())


def make_crl(
    issuer: Issuer,
    revoked_serials: Iterable[int],
    *,
    days: int = 30,
    number: int = 1,
    now: dt.datetime | None = None,
    revoked_at: Mapping[int, dt.datetime] | None = None,
) -> x509.CertificateRevocationList:
    """A CRL listing ``revoked_serials`` (dated from ``revoked_at`` where known)."""
    now = now or utcnow()
    dates = revoked_at or {}
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    for serial in revoked_serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(dates.get(serial, now))
            .build()
        )
    return b.sign(issuer.key, hashes.SHA256())


def key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes, passphrase: bytes | None, source: str) -> PrivateKey:
    """Load a P-256 private key; a missing or wrong passphrase is a :class:`SetupError`
    that says what to do."""
    try:
        key = serialization.load_pem_private_key(pem, passphrase or None)
    except TypeError as exc:
        if passphrase:
            raise SetupError(
                f"{source} is not encrypted but a passphrase was given: drop --passphrase-file"
            ) from exc
        raise SetupError(
            f"{source} is encrypted: give the region passphrase with --passphrase-file FILE "
            "(or FIELDTERM_PASSPHRASE_FILE)"
        ) from exc
    except ValueError as exc:
        if passphrase:
            raise SetupError(
                f"wrong passphrase for {source}: check the file given with --passphrase-file "
                "(it must hold the passphrase used at 'init')"
            ) from exc
        raise SetupError(f"{source} is not a readable private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SetupError(f"{source}: expected an EC P-256 private key")
    return key


def load_csr(pem: bytes, source: str) -> x509.CertificateSigningRequest:
    """Load and verify a CSR made on a device: P-256 key, valid self-signature."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise SetupError(
            f"{source} is not a PEM certificate request: make one on the device with "
            "'openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 ...'"
        ) from exc
    if not csr.is_signature_valid:
        raise SetupError(f"{source}: the request's signature does not verify: make a new one")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SetupError(
            f"{source}: the request's key must be EC P-256 (the broker's TLS accepts that "
            "everywhere): make a new key with curve P-256"
        )
    return csr


def csr_common_name(csr: x509.CertificateSigningRequest) -> str | None:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
