"""Replay store, terminal registry and audit trail on their own (real SQLite files)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import ConfigError
from host_tools.regional.audit import AuditTrail
from host_tools.regional.replay import ReplayStore
from host_tools.regional.terminals import TerminalRegistry, parse_terminals


def test_replay_store_refuses_a_nonce_twice_across_instances(tmp_path):
    a = ReplayStore(tmp_path / "seen.sqlite", 120)
    b = ReplayStore(tmp_path / "seen.sqlite", 120)  # a second process shares the file
    n = os.urandom(12)
    assert a.first_use(n, 1000.0) is True
    assert b.first_use(n, 1001.0) is False and a.first_use(n, 1002.0) is False
    assert a.first_use(os.urandom(12), 1000.0) is True
    assert a.prune(1000.0 + 241) == 2  # older than twice the window
    a.close()
    b.close()


def _pub_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def _write(path, terminals) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": 1, "region": "central", "terminals": terminals}))
    os.replace(tmp, path)


def test_registry_reloads_on_change_and_forgets_revoked(tmp_path):
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "terminals.json"
    entry = {"revoked": False, "keys": [{"ed25519": _pub_b64(k1), "not_after": None}]}
    _write(path, {"kiosk-001": entry})
    forgotten: list[str] = []
    now = [1_800_000_000.0]
    reg = TerminalRegistry(path, on_forget=forgotten.append, clock=lambda: now[0])
    assert [k.public_bytes_raw() for k in reg.keys("kiosk-001")] == [
        k1.public_key().public_bytes_raw()
    ]
    assert reg.keys("kiosk-999") == []
    assert reg.poll() is False  # unchanged
    grace = {"ed25519": _pub_b64(k1), "not_after": "2027-06-01T00:00:00Z"}
    _write(path, {"kiosk-001": {"revoked": False, "keys": [{"ed25519": _pub_b64(k2)}, grace]}})
    assert reg.poll() is True and forgotten == ["kiosk-001"]  # keys changed: re-verify
    assert len(reg.keys("kiosk-001")) == 2
    now[0] = 1_900_000_000.0  # past the rotation grace period
    assert len(reg.keys("kiosk-001")) == 1
    _write(path, {"kiosk-001": {**entry, "revoked": True}})
    assert reg.poll() is True and forgotten == ["kiosk-001", "kiosk-001"]
    assert reg.keys("kiosk-001") == []
    path.write_text("{not json")
    assert reg.poll() is False and reg.keys("kiosk-001") == []  # a bad file keeps the old view


def test_registry_errors_name_the_terminal(tmp_path):
    path = tmp_path / "terminals.json"
    _write(path, {"kiosk-001": {"keys": [{"ed25519": "not base64!"}]}})
    with pytest.raises(ConfigError) as e:
        parse_terminals(json.loads(path.read_text()), str(path))
    assert e.value.field == "terminals.kiosk-001.keys[0]"


def test_a_row_sqlite_refuses_costs_only_its_own_answer(tmp_path):
    # the live fuzz found the writer thread dying on one such row (an audit head seq of
    # 2**63 raised OverflowError), after which no answer was ever sent again
    trail = AuditTrail(tmp_path / "audit.sqlite", batch=50, linger=0.5, retention=None)
    sent: list[int] = []
    for i in range(6):
        head = (2**63, bytes(32)) if i == 2 else (i, bytes(32))
        trail.record(1000.0 + i, f"kiosk-{i:03d}", bytes(16), "00" * 8, "NO_MATCH", 3,
                     then=lambda i=i: sent.append(i), head=head)  # fmt: skip
    trail.close()
    assert sent == [0, 1, 3, 4, 5] and (trail.written, trail.failed) == (5, 1)
    later = AuditTrail(tmp_path / "audit.sqlite", retention=None)  # the writer goes on
    later.record(2000.0, "kiosk-009", bytes(16), "00" * 8, "NO_MATCH", 3,
                 then=lambda: sent.append(9), head=(2**64 - 1, bytes(32)))  # fmt: skip
    later.record(2001.0, "kiosk-009", bytes(16), "00" * 8, "NO_MATCH", 3,
                 then=lambda: sent.append(10))  # fmt: skip
    later.close()
    assert sent[-1] == 10 and 9 not in sent and (later.written, later.failed) == (1, 1)
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone() == (6,)


def test_audit_trail_batches_and_flushes_on_close(tmp_path):
    trail = AuditTrail(tmp_path / "audit.sqlite", batch=7)
    for i in range(50):
        trail.record(1000.0 + i, "kiosk-001", bytes(16), "00" * 8, "NO_MATCH", 3)
    trail.record(1100.0, "kiosk-002", None, None, "REFUSED:replay", None)
    trail.close()
    trail.close()  # idempotent
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        rows = db.execute("SELECT outcome, COUNT(*) FROM audit GROUP BY outcome").fetchall()
    assert sorted(rows) == [("NO_MATCH", 50), ("REFUSED:replay", 1)]
    assert trail.written == 51
