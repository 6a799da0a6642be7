"""`fieldterm audit verify` on a real log: exit status and what it prints."""

from __future__ import annotations

import json

from firmware.agent.audit import AuditLog
from firmware.cli import main

KEY = bytes(range(32))


def setup_log(tmp_path):
    log = tmp_path / "audit.log"
    key = tmp_path / "audit.key"
    key.write_text(KEY.hex())
    with AuditLog(log, KEY) as a:
        a.append("start")
        a.append("verdict", query_id=b"\x01" * 16, outcome="NO_MATCH", list_version="3")
        a.append("verdict", query_id=b"\x02" * 16, outcome="POSSIBLE_MATCH")
        head = a.head
    return log, key, head


def test_verify_ok(tmp_path, capsys):
    log, key, head = setup_log(tmp_path)
    assert main(["audit", "verify", "--log", str(log), "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit OK: 3 entries, head seq 3")
    rc = main(["audit", "verify", "--log", str(log), "--key", str(key), "--json",
               "--expect-seq", str(head.seq), "--expect-mac", head.mac])  # fmt: skip
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_verify_detects_edit(tmp_path, capsys):
    log, key, _ = setup_log(tmp_path)
    log.write_bytes(log.read_bytes().replace(b"POSSIBLE_MATCH", b"NO_MATCH"))
    assert main(["audit", "verify", "--log", str(log), "--key", str(key)]) == 1
    out = capsys.readouterr().out
    assert "line 3: MAC mismatch" in out and "audit TAMPERED" in out


def test_verify_detects_removed_line_via_config(tmp_path, capsys):
    log, key, _ = setup_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + lines[2])
    cfg = tmp_path / "terminal.toml"
    cfg.write_text(f'[agent]\nstate_dir = "."\naudit_key = "{key.name}"\n')
    assert main(["audit", "verify", "--config", str(cfg)]) == 1
    assert "line 2: chain broken" in capsys.readouterr().out


def test_verify_needs_inputs(tmp_path, capsys):
    assert main(["audit", "verify"]) == 4
    assert "--config" in capsys.readouterr().err


def test_verify_checks_the_chain_across_segments(tmp_path, capsys):
    log, key = tmp_path / "audit.log", tmp_path / "audit.key"
    key.write_text(KEY.hex())
    with AuditLog(log, KEY, segment_bytes=1500) as a:
        for i in range(40):
            a.append("verdict", query_id=bytes([i]) * 16, outcome="NO_MATCH")
    segs = sorted(tmp_path.glob("audit-*.log"))
    assert len(segs) >= 3
    assert main(["audit", "verify", "--log", str(log), "--key", str(key), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (rep["ok"], rep["entries"], rep["segments"]) == (True, 40, len(segs) + 1)
    segs[1].unlink()  # a whole segment removed
    assert main(["audit", "verify", "--log", str(log), "--key", str(key)]) == 1
    out = capsys.readouterr().out
    assert f"{segs[2].name} line" in out and "a segment was removed or renamed" in out
    # the active segment alone starts mid-chain: only with --this-file-only, and it says so
    assert main(["audit", "verify", "--log", str(log), "--key", str(key), "--this-file-only"]) == 1
    assert "line 1: chain broken" in capsys.readouterr().out
