"""``fieldterm offline build | check | status`` on a provisioned region (real files, keys)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.cli import main as fieldterm_main
from firmware.offline import listdir
from firmware.offline.listkey import key_id, load_list_key
from firmware.offline.store import OfflineStore
from firmware.protocol.keys import load_ed25519_public
from host_tools.sltd.store import open_store
from tests.support.localregion import TestRegion


def write_list_key(*paths: Path) -> bytes:
    """The region's offline-list key in each place (regional dir, every bundle), as
    provisioning will write it: 64 hex characters, mode 0600."""
    key = os.urandom(32)
    for p in paths:
        p.write_text(key.hex() + "\n")
        p.chmod(0o600)
    return key


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = fieldterm_main(list(argv))
    finally:
        sys.stdin = old
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegion]:
    d = tmp_path_factory.mktemp("offline-region")
    with TestRegion(d, terminals=("kiosk-001",), records=3000, seed=11, sample_size=25) as r:
        r.provision()
        r.generate_list()  # provisioning made the offline-list key and [offline]
        text = r.regional_toml.read_text()  # 16-bit: no false positive among 25 samples
        text = text.replace("fingerprint_bits = 8", "fingerprint_bits = 16")
        r.regional_toml.write_text(text.replace("chunk_size = 65536", "chunk_size = 4096"))
        yield r


@pytest.fixture(scope="module")
def built(region: TestRegion, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("list") / "list"
    rc, stdout, err = run(
        "offline", "build", "--config", str(region.regional_toml), "--out", str(out)
    )
    assert rc == 0, err
    lines = stdout.splitlines()
    assert len(lines) == 1
    return out, json.loads(lines[0])


def _jsonl(docs: list[list[str]]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def test_build_prints_one_json_line_with_the_contract_fields(
    region: TestRegion, built: tuple[Path, dict]
) -> None:
    out, info = built
    assert set(info) == {"version", "records", "bytes", "bits_per_record", "build_s"}
    assert info["records"] == 3000
    assert info["bytes"] == (out / listdir.FILTER).stat().st_size
    assert info["bits_per_record"] == pytest.approx(info["bytes"] * 8 / 3000, abs=1e-3)
    assert 16 <= info["bits_per_record"] <= 24  # 16-bit fingerprints, small-n overhead
    assert info["build_s"] >= 0
    with open_store(region.sltd_db) as store:
        assert info["version"] == store.version()


def test_check_answers_listed_and_unlisted_documents(
    region: TestRegion, built: tuple[Path, dict]
) -> None:
    out, info = built
    docs = region.listed + region.unlisted + [["not an MRZ"]]
    text = _jsonl(docs) + "\n" + "{not json\n"
    rc, stdout, err = run(
        "offline", "check", "--config", str(region.terminal_toml("kiosk-001")),
        "--list", str(out), "--mrz-jsonl", stdin=text,
    )  # fmt: skip
    assert rc == 0, err
    rows = [json.loads(x) for x in stdout.splitlines()]
    assert len(rows) == len(docs) + 1  # the blank line gives no verdict
    n = len(region.listed)
    assert [r["offline"] for r in rows[:n]] == ["LISTED"] * n
    assert [r["offline"] for r in rows[n : n + len(region.unlisted)]] == ["NOT_LISTED"] * len(
        region.unlisted
    )
    assert [r["offline"] for r in rows[-2:]] == ["RESCAN", "RESCAN"]
    assert all(set(r) == {"offline", "list_version", "list_age_s"} for r in rows)
    assert all(r["list_version"] == info["version"] for r in rows)
    assert all(0 <= r["list_age_s"] < 600 for r in rows)


def _copy_list(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_check_refuses_a_tampered_chunk_with_exit_4_and_no_verdicts(
    region: TestRegion, built: tuple[Path, dict], tmp_path: Path
) -> None:
    d = _copy_list(built[0], tmp_path / "tampered")
    data = bytearray((d / listdir.FILTER).read_bytes())
    data[5000] ^= 0x40  # inside chunk 1 (4096-byte chunks)
    (d / listdir.FILTER).write_bytes(bytes(data))
    rc, stdout, err = run(
        "offline", "check", "--config", str(region.terminal_toml("kiosk-001")),
        "--list", str(d), "--mrz-jsonl", stdin=_jsonl(region.listed),
    )  # fmt: skip
    assert (rc, stdout) == (4, "")
    assert "(chunk)" in err and "chunk 1" in err


def test_check_refuses_a_list_signed_by_another_key(
    region: TestRegion, built: tuple[Path, dict], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(region.bundle("kiosk-001"), bundle)
    other = Ed25519PrivateKey.generate().public_key()
    (bundle / "regional-sign.pub").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rc, stdout, err = run(
        "offline", "check", "--config", str(bundle / "terminal.toml"),
        "--list", str(built[0]), "--mrz-jsonl", stdin=_jsonl(region.listed),
    )  # fmt: skip
    assert (rc, stdout) == (4, "")
    assert "(signature)" in err


def test_check_refuses_a_list_under_another_offline_key(
    region: TestRegion, built: tuple[Path, dict], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(region.bundle("kiosk-001"), bundle)
    write_list_key(bundle / "offline-list.key")
    rc, stdout, err = run(
        "offline", "check", "--config", str(bundle / "terminal.toml"),
        "--list", str(built[0]), "--mrz-jsonl", stdin="",
    )  # fmt: skip
    assert (rc, stdout) == (4, "")
    assert "(key)" in err


def test_check_without_the_offline_key_is_a_config_error(
    region: TestRegion, built: tuple[Path, dict], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(region.bundle("kiosk-001"), bundle)
    (bundle / "offline-list.key").unlink()
    rc, stdout, err = run(
        "offline", "check", "--config", str(bundle / "terminal.toml"),
        "--list", str(built[0]), "--mrz-jsonl", stdin="",
    )  # fmt: skip
    assert (rc, stdout) == (4, "")
    assert "offline.list_key" in err and "file not found" in err


def test_build_without_the_offline_key_names_the_field(region: TestRegion, tmp_path: Path) -> None:
    cfg = tmp_path / "regional.toml"
    text = region.regional_toml.read_text().replace(
        'list_key = "offline-list.key"', f'list_key = "{tmp_path}/missing.key"'
    )
    # every other path in the file is relative to the regional directory
    cfg = region.broker_dir / "regional-nokey.toml"
    cfg.write_text(text)
    try:
        rc, stdout, err = run(
            "offline", "build", "--config", str(cfg), "--out", str(tmp_path / "o")
        )
    finally:
        cfg.unlink()
    assert (rc, stdout) == (4, "")
    assert "offline.list_key" in err


def test_status_reports_the_installed_list(
    region: TestRegion, built: tuple[Path, dict], tmp_path: Path
) -> None:
    toml = region.terminal_toml("kiosk-001")
    state = tmp_path / "state"
    rc, stdout, err = run("offline", "status", "--config", str(toml), "--state-dir", str(state))
    assert rc == 4 and json.loads(stdout)["list_version"] is None
    assert json.loads(stdout)["reason"] == "none"

    bundle = region.bundle("kiosk-001")
    key = load_list_key(bundle / "offline-list.key")
    store = OfflineStore(
        state / "offline",
        region=region.region,
        sign_public=load_ed25519_public(bundle / "regional-sign.pub"),
        key_id=key_id(key),
    )
    dl = store.begin((built[0] / listdir.MANIFEST).read_bytes())
    payload = (built[0] / listdir.FILTER).read_bytes()
    for i in dl.missing():
        s, e = dl.manifest.chunk_span(i)
        dl.put(i, payload[s:e])
    dl.install().close()
    rc, stdout, err = run("offline", "status", "--config", str(toml), "--state-dir", str(state))
    assert rc == 0, err
    st = json.loads(stdout)
    assert st["list_version"] == built[1]["version"] and st["records"] == 3000
    assert st["store"] == str(state / "offline") and st["delta"] is False
    assert 0 <= st["list_age_s"] < 600 and st["stale"] is False
