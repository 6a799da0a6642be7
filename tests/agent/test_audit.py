"""Audit chain: every kind of tampering is found and names a line."""

from __future__ import annotations

import hashlib
import json

import pytest

from firmware.agent.audit import AuditHead, AuditLog, load_audit_key, verify, verify_file
from firmware.errors import SetupError

KEY = bytes(range(32))


def make_log(path, n=6):
    times = iter(range(1_700_000_000, 1_700_000_100))
    with AuditLog(path, KEY, wall=lambda: float(next(times))) as log:
        log.append("start")
        for i in range(n - 1):
            log.append("verdict", query_id=bytes([i]) * 16, dkh=0xDEAD0000 + i,
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
    assert e["dkh"] == "00000000dead0000"


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


def test_reopen_continues_chain_and_remembers_verdicts(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p, n=3)
    with AuditLog(p, KEY) as log:
        assert log.has_verdict(bytes([0]) * 16)
        assert not log.has_verdict(b"\x09" * 16)
        log.append("accepted", query_id=b"\x09" * 16, dkh=1)
    assert verify_file(p, KEY).ok


def test_load_audit_key(tmp_path):
    k = tmp_path / "audit.key"
    k.write_text(KEY.hex() + "\n")
    assert load_audit_key(k) == KEY
    k.write_text("zz")
    with pytest.raises(SetupError, match="not hex"):
        load_audit_key(k)


def test_head_type():
    assert AuditHead(1, "a") == AuditHead(1, "a")
