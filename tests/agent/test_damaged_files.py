"""Damaged files at start (issue 14): the outbox empty, missing, not a database, with a
corrupt page or a bad WAL; the audit log cut, deleted or replaced. Each time the agent's
stores open, keep what they can, put the bad file aside as ``<name>.bad-<UTC>`` and
raise an alarm; scan numbers never restart at 1, and lost scans are named."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from firmware.agent.audit import AuditLog, verify_file
from firmware.agent.outbox import Outbox
from firmware.agent.outbox_file import wal_header_ok
from firmware.agent.startcheck import start_alarms
from tests.agent.test_core import KEY

SEALED = b"\x01" * 40


def history(d, pending=3, answered=2):
    """An outbox and audit log as the agent leaves them: ``answered`` scans with
    verdicts, then ``pending`` scans accepted and waiting. Returns the pending ids."""
    audit = AuditLog(d / "audit.log", KEY)
    ob = Outbox(d / "outbox.sqlite")
    audit.append("start", outcome="pending=0")
    waiting = []
    for i in range(answered + pending):
        qid = bytes([i + 1]) * 16
        ob.add(qid, SEALED, 1.0, audit_seq=audit.head.seq)
        audit.append("accepted", query_id=qid)
        if i < answered:
            audit.append("verdict", query_id=qid, outcome="NO_MATCH")
            ob.resolve(qid)
        else:
            waiting.append(qid)
    ob.close()
    audit.close()
    return waiting


def reopen(d):
    audit = AuditLog(d / "audit.log", KEY)
    ob = Outbox(
        d / "outbox.sqlite", seq_floor=audit.head.seq, accepted_at=audit.last_accepted_seq()
    )
    return ob, audit, start_alarms(ob, audit)


def aside(d, prefix):
    return sorted(p.name for p in d.iterdir() if p.name.startswith(prefix) and ".bad-" in p.name)


def test_sound_files_raise_no_alarm(tmp_path):
    waiting = history(tmp_path)
    ob, _audit, alarms = reopen(tmp_path)
    assert alarms == [] and [e.query_id for e in ob.pending()] == waiting
    assert ob.next_seq() == 6


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_missing_or_empty_outbox_names_the_lost_scans_and_keeps_numbering(tmp_path, damage):
    waiting = history(tmp_path)
    (tmp_path / "outbox.sqlite").unlink()
    if damage == "empty":
        (tmp_path / "outbox.sqlite").write_bytes(b"")
    ob, _audit, alarms = reopen(tmp_path)
    assert any(f"was {damage}" in a for a in alarms), alarms
    lost = [a for a in alarms if "neither a verdict nor an outbox row" in a]
    assert lost and lost[0].startswith("3 accepted scans")
    assert all(q.hex()[:12] in lost[0] for q in waiting)
    assert ob.next_seq() > 5  # above every scan number used before (not 1 again)


def test_not_a_database_is_put_aside_not_a_traceback(tmp_path):
    history(tmp_path)
    (tmp_path / "outbox.sqlite").write_bytes(b"this is not SQLite\n" * 300)
    ob, _audit, alarms = reopen(tmp_path)
    assert len(aside(tmp_path, "outbox.sqlite")) == 1
    assert any("is damaged" in a and "put aside as outbox.sqlite.bad-" in a for a in alarms)
    assert any(a.startswith("3 accepted scans") for a in alarms)
    assert ob.next_seq() > 5
    ob.add(b"\x09" * 16, SEALED, 2.0)  # and the new outbox works


def test_corrupt_page_keeps_the_readable_rows(tmp_path):
    """Many rows over several pages; one page of the table overwritten with junk."""
    audit = AuditLog(tmp_path / "audit.log", KEY)
    ob = Outbox(tmp_path / "outbox.sqlite")
    for i in range(60):
        qid = i.to_bytes(16, "big")
        ob.add(qid, bytes([i % 250 + 1]) * 900, 1.0, audit_seq=audit.head.seq)
        audit.append("accepted", query_id=qid)
    ob.close()
    audit.close()
    path = tmp_path / "outbox.sqlite"
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    raw = bytearray(path.read_bytes())
    assert len(raw) // page > 10
    victim = len(raw) // page - 2  # a leaf page of ``pending`` near the end
    raw[victim * page : (victim + 1) * page] = b"\xa5" * page
    path.write_bytes(bytes(raw))

    ob, _audit, alarms = reopen(tmp_path)
    assert any("is damaged" in a for a in alarms), alarms
    kept = len(ob.pending())
    assert 0 < kept < 60
    assert any(a.startswith(f"{60 - kept} accepted scans") for a in alarms)
    assert ob.next_seq() == 61  # the counter (or the audit head) kept numbering going
    assert aside(tmp_path, "outbox.sqlite")


def test_bad_wal_is_put_aside_and_its_scans_reported(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    history(live, pending=0, answered=1)
    audit = AuditLog(live / "audit.log", KEY)
    ob = Outbox(live / "outbox.sqlite")
    qid = b"\x07" * 16
    ob.add(qid, SEALED, 1.0, audit_seq=audit.head.seq)  # committed into the WAL only
    audit.append("accepted", query_id=qid)
    crash = tmp_path / "crash"
    shutil.copytree(live, crash)  # the files as a power cut leaves them (no checkpoint)
    ob.close()
    audit.close()
    wal = crash / "outbox.sqlite-wal"
    assert wal_header_ok(wal.read_bytes()[:32])
    wal.write_bytes(b"\x00" * 32 + wal.read_bytes()[32:])

    ob, _audit, alarms = reopen(crash)
    assert any("WAL is damaged" in a for a in alarms), alarms
    assert any(a.startswith("1 accepted scans") and qid.hex()[:12] in a for a in alarms)
    assert aside(crash, "outbox.sqlite-wal")
    assert ob.next_seq() > 2


def test_lost_wal_behind_a_sound_main_file_is_an_alarm(tmp_path):
    """Found by the chaos run's wal-lost scenario (seed 21): the WAL and shm deleted while
    the main file is sound gave an older outbox, no alarm, and scan numbers used again."""
    live = tmp_path / "live"
    live.mkdir()
    history(live, pending=1, answered=2)  # closed: checkpointed into the main file
    audit = AuditLog(live / "audit.log", KEY)
    ob = Outbox(live / "outbox.sqlite")
    qid = b"\x09" * 16
    ob.add(qid, SEALED, 1.0, audit_seq=audit.head.seq)  # committed into the WAL only
    audit.append("accepted", query_id=qid)
    crash = tmp_path / "crash"
    shutil.copytree(live, crash)  # no checkpoint: that scan is only in the WAL
    ob.close()
    audit.close()
    (crash / "outbox.sqlite-wal").unlink()
    (crash / "outbox.sqlite-shm").unlink(missing_ok=True)

    ob, _audit, alarms = reopen(crash)
    assert any("is behind the audit log" in a for a in alarms), alarms
    lost = [a for a in alarms if "neither a verdict nor an outbox row" in a]
    assert lost and lost[0].startswith("1 accepted scans") and qid.hex()[:12] in lost[0]
    assert [e.query_id for e in ob.pending()] == [b"\x03" * 16]  # the older one kept
    assert ob.next_seq() > 4  # scans 1-4 were used: never given out again


@pytest.mark.parametrize("damage", ["cut", "deleted"])
def test_audit_log_cut_or_deleted_is_an_alarm(tmp_path, damage):
    history(tmp_path)
    log = tmp_path / "audit.log"
    if damage == "deleted":
        log.unlink()
    else:
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:4]))
    _ob, _audit, alarms = reopen(tmp_path)
    assert any("the log was cut, deleted or replaced" in a for a in alarms), alarms


def test_audit_log_replaced_under_another_key_is_put_aside(tmp_path):
    history(tmp_path)
    (tmp_path / "audit.log").unlink()
    with AuditLog(tmp_path / "audit.log", b"\x55" * 32) as forged:
        for _ in range(9):
            forged.append("start", outcome="pending=0")
    _ob, _audit, alarms = reopen(tmp_path)
    assert any("does not verify" in a and "audit.log.bad-" in a for a in alarms), alarms
    assert aside(tmp_path, "audit.log")
    rep = verify_file(tmp_path / "audit.log", KEY)
    assert rep.ok and rep.counts == {"recovered": 1}
