"""Topics and key loading."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from firmware.errors import ConfigError, EnvelopeError, SetupError
from firmware.protocol import keys, topics
from tests.protocol.helpers import identity, kem


def test_topics() -> None:
    assert topics.query_topic("eu", "k-1") == "ft/v1/eu/q/k-1"
    assert topics.response_topic("eu", "k-1") == "ft/v1/eu/r/k-1"
    assert topics.status_topic("eu", "k-1") == "ft/v1/eu/status/k-1"
    assert topics.alert_topic("eu") == "ft/v1/eu/alert"
    assert topics.query_subscription("eu", "rg") == "$share/rg/ft/v1/eu/q/+"
    assert topics.query_subscription("eu", None) == "ft/v1/eu/q/+"
    assert topics.query_route("eu", "ft/v1/eu/q/k-1") == ("k-1", None)
    # a kiosk behind a site broker: its bridge's route, answered by the same route
    assert topics.query_subscriptions("eu", "rg") == (
        "$share/rg/ft/v1/eu/q/+",
        "$share/rg/ft/v1/eu/site/+/q/+",
    )
    assert topics.query_route("eu", "ft/v1/eu/site/s-2/q/k-1") == ("k-1", "s-2")
    assert topics.reply_topic("eu", "k-1", "s-2") == "ft/v1/eu/site/s-2/r/k-1"
    assert topics.reply_topic("eu", "k-1", None) == "ft/v1/eu/r/k-1"
    assert topics.per_terminal_prefix("eu", "q", "s-2") == "ft/v1/eu/site/s-2/q/"
    assert topics.site_filter("eu", "r", "s-2") == "ft/v1/eu/site/s-2/r/+"
    assert topics.per_terminal_filter("eu", "status") == "ft/v1/eu/status/+"
    assert topics.list_filter("eu") == "ft/v1/eu/list/#"
    with pytest.raises(ValueError, match="kind"):
        topics.per_terminal_filter("eu", "alert")
    with pytest.raises(ConfigError, match="region"):
        topics.list_filter("EU/#")


@pytest.mark.parametrize("bad", ["", "K1", "a/b", "a+", "#", "-a", "a" * 64])
def test_bad_ids_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="terminal"):
        topics.query_topic("eu", bad)


@pytest.mark.parametrize(
    "topic",
    [
        "ft/v1/eu/r/k-1",
        "ft/v1/us/q/k-1",
        "ft/v1/eu/q/k/1",
        "ft/v1/eu/q/",
        "ft/v1/eu/site/s-1/r/k-1",
        "ft/v1/eu/site/S1/q/k-1",
        "ft/v1/eu/site/s-1/q/",
        "ft/v1/eu/site/q/k-1",
    ],
)
def test_not_a_query_topic(topic: str) -> None:
    with pytest.raises(EnvelopeError):
        topics.query_route("eu", topic)


def test_key_files(tmp_path) -> None:
    enc = serialization.BestAvailableEncryption(b"pw")
    pk8, spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    fmt = serialization.PrivateFormat.PKCS8
    (tmp_path / "id.key").write_bytes(identity().private_bytes(pk8, fmt, enc))
    (tmp_path / "kem.key").write_bytes(kem().private_bytes(pk8, fmt, serialization.NoEncryption()))
    (tmp_path / "id.pub").write_bytes(identity().public_key().public_bytes(pk8, spki))
    (tmp_path / "kem.pub").write_bytes(kem().public_key().public_bytes(pk8, spki))
    (tmp_path / "s.hex").write_text("ab" * 32 + "\n")
    assert (
        keys.load_ed25519_private(tmp_path / "id.key", b"pw").public_key()
        == identity().public_key()
    )
    assert keys.load_x25519_private(tmp_path / "kem.key").public_key() == kem().public_key()
    assert keys.load_ed25519_public(tmp_path / "id.pub") == identity().public_key()
    assert keys.load_x25519_public(tmp_path / "kem.pub") == kem().public_key()
    assert keys.load_secret(tmp_path / "s.hex") == b"\xab" * 32
    b64 = keys.ed25519_public_b64(identity().public_key())
    assert keys.ed25519_public_from_b64(b64) == identity().public_key()
    with pytest.raises(SetupError, match="passphrase"):
        keys.load_ed25519_private(tmp_path / "id.key")
    with pytest.raises(SetupError, match="expected a Ed25519"):
        keys.load_ed25519_private(tmp_path / "kem.key")
    with pytest.raises(SetupError, match="not found"):
        keys.load_x25519_public(tmp_path / "missing.pub")
    with pytest.raises(SetupError, match="expected a X25519"):
        keys.load_x25519_public(tmp_path / "id.pub")
    (tmp_path / "short.hex").write_text("ab" * 31)
    with pytest.raises(ConfigError, match=r"short\.hex"):
        keys.load_secret(tmp_path / "short.hex")
    with pytest.raises(ConfigError):
        keys.ed25519_public_from_b64("not base64!")


# RFC 8410 section 10.1 and 10.3: an Ed25519 public key and the private key it belongs to.
RFC8410_PUBLIC = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----\n"
)
RFC8410_PRIVATE = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
    "-----END PRIVATE KEY-----\n"
)


def test_rfc8410_keys_load_without_the_general_pem_loader(tmp_path) -> None:
    """The kiosk's key files are read without importing cryptography's serialization module
    (RSA, DSA, EC, SSH), and give the same keys the RFC's pair does."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    (tmp_path / "id.key").write_text(RFC8410_PRIVATE)
    (tmp_path / "id.pub").write_text(RFC8410_PUBLIC)
    code = (
        "import sys\n"
        "from firmware.protocol import keys\n"
        f"priv = keys.load_ed25519_private({str(tmp_path / 'id.key')!r})\n"
        f"pub = keys.load_ed25519_public({str(tmp_path / 'id.pub')!r})\n"
        "print(priv.public_key() == pub, pub.public_bytes_raw().hex())\n"
        "print('cryptography.hazmat.primitives.serialization' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    # the raw key is the last 32 bytes of the RFC's SPKI, decoded independently here
    raw = base64.b64decode(RFC8410_PUBLIC.splitlines()[1])[-32:]
    assert out == ["True", raw.hex(), "False"]


def test_crlf_pem_loads_and_a_wrong_algorithm_is_refused(tmp_path) -> None:
    """CR LF line ends (a file edited on Windows) still load; a key of the other algorithm is
    refused by name, as the general loader refuses it."""
    (tmp_path / "id.key").write_text(RFC8410_PRIVATE.replace("\n", "\r\n"), newline="")
    (tmp_path / "id.pub").write_text(RFC8410_PUBLIC)
    assert keys.load_ed25519_private(tmp_path / "id.key").public_key() == keys.load_ed25519_public(
        tmp_path / "id.pub"
    )
    with pytest.raises(SetupError, match="expected a X25519 private key"):
        keys.load_x25519_private(tmp_path / "id.key")
    (tmp_path / "kem.pub").write_bytes(
        kem()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SetupError, match="expected a Ed25519 public key"):
        keys.load_ed25519_public(tmp_path / "kem.pub")
