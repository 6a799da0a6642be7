"""A throwaway region PKI for tests that need TLS before provisioning is involved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from host_tools.provision import pki

from .broker import BrokerTls


@dataclass
class TestPki:
    dir: Path
    ca: pki.Issuer
    cafile: Path
    broker_tls: BrokerTls

    def client(self, cn: str) -> tuple[Path, Path]:
        """Issue a client certificate for ``cn``; returns (certfile, keyfile)."""
        key = pki.new_key()
        cert = pki.issue(self.ca, cn, key.public_key(), client=True)
        cf, kf = self.dir / f"{cn}.crt", self.dir / f"{cn}.key"
        cf.write_bytes(pki.cert_pem(cert))
        kf.write_bytes(pki.key_pem(key))
        kf.chmod(0o600)
        return cf, kf


def make_test_pki(directory: Path) -> TestPki:
    directory.mkdir(parents=True, exist_ok=True)
    root = pki.make_root("test root")
    inter = pki.make_intermediate(root, "test issuing CA")
    cafile = directory / "ca.crt"
    # The chain file holds intermediate + root so that peers verify to the root.
    cafile.write_bytes(pki.cert_pem(inter.cert) + pki.cert_pem(root.cert))
    bkey = pki.new_key()
    bcert = pki.issue(
        inter, "broker", bkey.public_key(), server=True, hosts=["127.0.0.1", "localhost"]
    )
    (directory / "broker.crt").write_bytes(pki.cert_pem(bcert) + pki.cert_pem(inter.cert))
    (directory / "broker.key").write_bytes(pki.key_pem(bkey))
    (directory / "broker.key").chmod(0o600)
    tls = BrokerTls(cafile, directory / "broker.crt", directory / "broker.key")
    return TestPki(directory, inter, cafile, tls)
