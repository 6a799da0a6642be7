"""Audit chain: every kind of tampering is found and names a line; segments chain; a
start reads only the tail; nothing in a line names a document."""

from __future__ import annotations

import hashlib
import json

import pytest

from firmware.agent import audit as audit_mod
from firmware.agent.audit import (
    AuditHead,
    AuditLog,
    load_audit_key,
    segment_name,
    segments,
    verify,
    verify_file,
)
from firmware.errors import SetupError

KEY = bytes(range(32))


def make_log(path, n=6):
    times = iter(range(1_700_000_000, 1_700_000_100))
    with AuditLog(path, KEY, wall=lambda: float(next(times))) as log:
        log.append("start")
        for i in range(n - 1):
            log.append("verdict", query_id=bytes([i]) * 16,
                       outcome="NO_MATCH", list_version="v1")  # fmt: skip
        return log.head


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def test_clean_log_verifies_and_holds_no_document_data(tmp_path):
    p = tmp_path / "audit.log"
    head = make_log(p)
    rep = verify_file(p, KEY, expect_head=head)
    assert rep.ok and rep.entries == 6 and rep.counts == {"start": 1, "verdict": 5}
    e = json.loads(lines(p)[1])
    assert set(e) == {"seq", "t", "kind", "qid", "dkh", "outcome", "list_version", "prev", "mac"}
    assert e["dkh"] is None  # no keyed hash a card holder could brute-force


def test_wrong_key_fails(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    assert not verify_file(p, b"\x00" * 32).ok


@pytest.mark.parametrize(
    ("name", "tamper", "where"),
    [
        (
            "edit",
            lambda ls: ls.__setitem__(2, ls[2].replace(b"NO_MATCH", b"POSSIBLE_MATCH")),
            "line 3",
        ),
        ("delete", lambda ls: ls.pop(3), "line 4"),
        ("reorder", lambda ls: ls.insert(2, ls.pop(3)), "line 3"),
        ("truncate middle", lambda ls: ls.__delitem__(slice(1, 4)), "line 2"),
        ("duplicate", lambda ls: ls.insert(3, ls[2]), "line 4"),
    ],
)
def test_tampering_is_detected(tmp_path, name, tamper, where):
    p = tmp_path / "audit.log"
    make_log(p)
    ls = lines(p)
    tamper(ls)
    rep = verify(ls, KEY)
    assert not rep.ok, name
    assert rep.problems[0].startswith(where + ":"), rep.problems


def test_edit_that_recomputes_mac_without_key_still_fails(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    ls = lines(p)
    e = json.loads(ls[2])
    e["outcome"] = "POSSIBLE_MATCH"
    e["mac"] = hashlib.sha256(b"guess").hexdigest()
    ls[2] = (json.dumps(e) + "\n").encode()
    assert not verify(ls, KEY).ok


def test_cut_at_end_needs_the_published_head(tmp_path):
    p = tmp_path / "audit.log"
    head = make_log(p)
    ls = lines(p)[:-2]
    assert verify(ls, KEY).ok  # the file alone cannot tell
    rep = verify(ls, KEY, expect_head=head)
    assert not rep.ok and "cut" in rep.problems[0]


def test_torn_last_line_is_cut_and_recorded_on_reopen(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p, n=3)
    with p.open("ab") as fh:
        fh.write(b'{"seq":4,"t":"half')
    with AuditLog(p, KEY) as log:
        assert log.head.seq == 4
        log.append("start")
    rep = verify_file(p, KEY)
    assert rep.ok, rep.problems
    kinds = [json.loads(x)["kind"] for x in lines(p)]
    assert kinds == ["start", "verdict", "verdict", "recovered", "start"]
    assert json.loads(lines(p)[3])["outcome"] == "torn_bytes=18"


def test_reopen_continues_chain_and_finds_verdicts(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p, n=3)
    with AuditLog(p, KEY) as log:
        assert log.has_verdict(bytes([0]) * 16)
        assert not log.has_verdict(b"\x09" * 16)
        assert log.verdicts_among({bytes([1]) * 16: 0, b"\x09" * 16: None}) == {bytes([1]) * 16}
        log.append("accepted", query_id=b"\x09" * 16)
    assert verify_file(p, KEY).ok


def test_dkh_is_no_longer_accepted():
    with pytest.raises(TypeError):
        AuditLog.append(None, "verdict", dkh=1)  # type: ignore[arg-type, call-arg]


def seg_log(tmp_path, n=60, segment_bytes=2000):
    p = tmp_path / "audit.log"
    with AuditLog(p, KEY, segment_bytes=segment_bytes) as log:
        for i in range(n):
            log.append("verdict", query_id=i.to_bytes(16, "big"), outcome="NO_MATCH")
        return p, log.head


def test_segments_rotate_and_verify_as_one_chain(tmp_path):
    p, head = seg_log(tmp_path)
    segs = segments(p)
    assert len(segs) > 5 and segs[-1] == p
    assert segs[1].name == f"audit-{json.loads(lines(segs[1])[0])['seq']:012d}.log"
    rep = verify_file(p, KEY, expect_head=head)
    assert rep.ok, rep.problems
    assert (rep.entries, rep.segments, rep.head) == (60, len(segs), head)
    with AuditLog(p, KEY, segment_bytes=2000) as log:  # a start continues the chain
        assert log.head == head
        assert log.verdicts_among({(3).to_bytes(16, "big"): 2, (59).to_bytes(16, "big"): 50}) == {
            (3).to_bytes(16, "big"),
            (59).to_bytes(16, "big"),
        }
        log.append("start")
    assert verify_file(p, KEY).ok


@pytest.mark.parametrize("action", ["remove first", "remove middle", "swap names", "edit"])
def test_segment_tampering_is_detected(tmp_path, action):
    p, head = seg_log(tmp_path)
    segs = segments(p)
    if action == "remove first":
        segs[0].unlink()
    elif action == "remove middle":
        segs[2].unlink()
    elif action == "swap names":
        tmp = segs[1].with_suffix(".tmp")
        segs[1].rename(tmp)
        segs[2].rename(segs[1])
        tmp.rename(segs[2])
    else:
        ls = lines(segs[1])
        ls[0] = ls[0].replace(b"NO_MATCH", b"POSSIBLE_MATCH")
        segs[1].write_bytes(b"".join(ls))
    rep = verify_file(p, KEY, expect_head=head)
    assert not rep.ok
    assert "audit-" in rep.problems[0], rep.problems


def test_rotation_cut_by_a_crash_goes_on(tmp_path):
    """Killed between renaming the full segment and creating the next: the start finds
    the head in the newest segment and the chain goes on."""
    p, head = seg_log(tmp_path, n=10, segment_bytes=1 << 20)
    p.rename(segment_name(p, 1))
    with AuditLog(p, KEY) as log:
        assert log.head == head
        log.append("start")
    assert verify_file(p, KEY).ok


def test_start_reads_only_the_tail_at_once(tmp_path, monkeypatch):
    """A start finds the head from the end of the newest segment (at most ``_TAIL`` bytes
    read at once); its check of the active segment streams it line by line, and never
    reads the full segments before it."""
    p, head = seg_log(tmp_path, n=400, segment_bytes=1 << 30)
    size = p.stat().st_size
    assert size > 16 * 1024  # many times what a start may read
    read = []
    real_open = open

    def spy(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        if "b" in mode and "r" in mode:
            orig = fh.read

            def counted(n=-1):
                data = orig(n)
                read.append(len(data))
                return data

            fh.read = counted
        return fh

    monkeypatch.setattr("builtins.open", spy)
    monkeypatch.setattr(audit_mod, "_TAIL", 1024)
    with AuditLog(p, KEY) as log:
        assert log.head == head
    assert 0 < sum(read) <= 2 * 1024


def test_load_audit_key(tmp_path):
    k = tmp_path / "audit.key"
    k.write_text(KEY.hex() + "\n")
    assert load_audit_key(k) == KEY
    k.write_text("zz")
    with pytest.raises(SetupError, match="not hex"):
        load_audit_key(k)


def test_head_type():
    assert AuditHead(1, "a") == AuditHead(1, "a")


def test_a_line_damaged_in_the_middle_is_an_alarm_at_start_once(tmp_path):
    """Chaos found a garbled line in the middle of audit.log went unnoticed until someone
    ran verify. A start now checks the active segment: one alarm naming the line, the
    lines kept, the chain going on; the next start does not raise it again, but new
    damage after it is raised."""
    p = tmp_path / "audit.log"
    make_log(p, n=8)
    ls = lines(p)
    ls[3] = ls[3][:20] + b"#garbled#" + ls[3][29:]
    p.write_bytes(b"".join(ls))
    with AuditLog(p, KEY) as log:
        [alarm] = log.alarms
        assert "audit.log: 1 problem(s) found at start, the first line 4: MAC mismatch" in alarm
        assert log.put_aside == [] and log.head.seq == 9  # kept: 8 lines and the report
        log.append("start")
    assert lines(p)[:3] == ls[:3] and lines(p)[3] == ls[3]  # nothing rewritten
    rep = verify_file(p, KEY)
    assert [x.split(":")[0] for x in rep.problems] == ["line 4"]
    with AuditLog(p, KEY) as log:
        assert log.alarms == []  # reported already
    ls = lines(p)
    ls[1] = ls[1][:20] + b"#again#" + ls[1][27:]  # new damage before the report's line
    p.write_bytes(b"".join(ls))
    with AuditLog(p, KEY) as log:
        [alarm] = log.alarms
        assert "1 problem(s) found at start, the first line 2: MAC mismatch" in alarm
    with AuditLog(p, KEY) as log:
        assert log.alarms == []
    ls = lines(p)
    ls[-1] = ls[-1].replace(b'"kind":"', b'"kind":"X')  # the head itself damaged
    p.write_bytes(b"".join(ls))
    with AuditLog(p, KEY) as log:  # a head that does not verify is put aside, as before
        assert len(log.put_aside) == 1 and "does not verify" in log.alarms[0]


def test_a_rotated_active_segment_is_checked_from_where_it_goes_on(tmp_path):
    p, head = seg_log(tmp_path)
    assert len(segments(p)) > 1 and json.loads(lines(p)[0])["seq"] > 1
    with AuditLog(p, KEY, segment_bytes=2000) as log:
        assert log.alarms == [] and log.head == head
