"""Attacks on the region's CA keys at rest: a passphrase file others can read, and a
registry left unencrypted because nobody gave a passphrase."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.provision.helpers import WAIT, provision

FIELDTERM = str(Path(sys.executable).with_name("fieldterm"))


def _encrypted(reg: Path) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in (reg / "ca" / "issuing.key").read_bytes()


def test_a_passphrase_file_others_can_read_is_refused(tmp_path, capsys):
    pw = tmp_path / "pass.txt"
    pw.write_text("a long passphrase\n")
    pw.chmod(0o644)
    reg = tmp_path / "reg"
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 4
    err = capsys.readouterr().err
    assert str(pw) in err and "0644" in err and "chmod 600" in err
    assert not (reg / "registry.sqlite").exists()
    pw.chmod(0o600)  # the honest technician's next try goes through
    assert provision(reg, "init", "--region", "central", passphrase=pw) == 0
    assert _encrypted(reg)
    pw.chmod(0o640)  # ... and every later command checks again
    assert provision(reg, "list", passphrase=pw) == 4
    assert "0640" in capsys.readouterr().err


def test_init_without_a_passphrase_is_refused_unless_told(tmp_path, capsys):
    reg = tmp_path / "reg"
    # pytest's stdin is not a terminal: nothing to ask on, so no silent plain keys
    assert provision(reg, "init", "--region", "central") == 4
    assert "--no-passphrase" in capsys.readouterr().err
    assert not (reg / "registry.sqlite").exists()
    assert provision(reg, "init", "--region", "central", "--no-passphrase") == 0
    assert "NOT encrypted (--no-passphrase)" in capsys.readouterr().out
    assert not _encrypted(reg)


def _expect(fd: int, text: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + WAIT
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} on the terminal; saw {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break


def test_init_on_a_terminal_asks_twice_and_encrypts(tmp_path):
    master, slave = os.openpty()
    reg = tmp_path / "reg"
    proc = subprocess.Popen(
        [FIELDTERM, "provision", "--registry", str(reg), "init", "--region", "central"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "FIELDTERM_PASSPHRASE_FILE"},
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    try:
        _expect(master, b"new registry passphrase:", seen)
        os.write(master, b"typed at the terminal\n")
        _expect(master, b"again:", seen)
        os.write(master, b"typed at the terminal\n")
        assert proc.wait(timeout=60) == 0, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert _encrypted(reg)
    pw = tmp_path / "pw"
    pw.write_text("typed at the terminal\n")
    pw.chmod(0o600)
    assert (
        provision(reg, "add-terminal", "kiosk-001", "--out", str(tmp_path / "b"), passphrase=pw)
        == 0
    )
