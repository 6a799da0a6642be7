"""The offline answer of a pending scan survives a restart of the agent (issue 12, item 4).

The outbox row of a scan answered from the offline list records that answer (listed or
not, the list's version and age), so after a restart, even a SIGKILL, the online verdict
is still judged against it: a NO_MATCH after an offline hit is "cleared online", a
POSSIBLE_MATCH after an offline NOT LISTED a latched late hit. An offline hit nobody
acknowledged is latched again at the start (issue 14), behind any online match latched. Also: an outbox written
before these columns existed gets them at open, its rows intact.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

from firmware.agent.audit import verify_file
from firmware.agent.outbox import OfflineMark, Outbox
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.pending import SealedDocumentKey
from tests.agent.offline_lists import LISTED, UNLISTED, Region
from tests.agent.sealing import SEALER, opened
from tests.agent.test_offline_verdicts import AUDIT_KEY, Kiosk, scan

#: The ``pending`` table as the first release made it (before the offline columns).
OLD_SCHEMA = """
CREATE TABLE pending (
    query_id   BLOB PRIMARY KEY,
    seq        INTEGER NOT NULL UNIQUE,
    scanned_at REAL NOT NULL,
    state      TEXT NOT NULL,
    category   TEXT NOT NULL,
    number     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO pending(query_id, seq, scanned_at, state, category, number, attempts)
    VALUES (x'01010101010101010101010101010101', 4, 12.5, 'UTO', 'P', 'L898902C3', 2);
INSERT INTO meta(name, value) VALUES ('seq', 4);
"""


def _box(qid: bytes, key: tuple[str, str, str]) -> bytes:
    return SEALER.seal(qid, DocumentKey(*key))


def _migrate(qid: bytes, key: tuple[str, str, str]) -> bytes:
    return _box(qid, key)


def test_an_offline_answer_is_recorded_on_the_outbox_row_and_leaves_with_it(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob:
        a = ob.add(b"\x01" * 16, _box(b"\x01" * 16, LISTED), 1.0)
        b = ob.add(b"\x02" * 16, _box(b"\x02" * 16, UNLISTED), 2.0)
        ob.add(b"\x03" * 16, _box(b"\x03" * 16, UNLISTED), 3.0)
        assert ob.mark_offline(a.query_id, True, 17, 3600.5)
        assert ob.mark_offline(b.query_id, False, 17, 3600.5)
        assert not ob.mark_offline(b"\x09" * 16, True, 17, 1.0)  # not pending
        assert ob.offline_marks() == {
            a.query_id: OfflineMark(True, 17, 3600.5),
            b.query_id: OfflineMark(False, 17, 3600.5),
        }
        ob.resolve(a.query_id)
        assert list(ob.offline_marks()) == [b.query_id]


def test_an_outbox_from_before_the_offline_columns_gets_them_at_open(tmp_path):
    p = tmp_path / "o.sqlite"
    db = sqlite3.connect(p)
    db.executescript(OLD_SCHEMA)
    db.close()
    with Outbox(p, migrate=_migrate) as ob:  # sealed first, then the offline columns
        [e] = ob.pending()
        assert (e.seq, e.scanned_at, e.attempts) == (4, 12.5, 2)
        assert opened(SealedDocumentKey(e.sealed), e.query_id) == DocumentKey(*LISTED)
        assert ob.offline_marks() == {}
        assert ob.mark_offline(e.query_id, True, 5, 10.0)
        assert ob.next_seq() == 5
    with Outbox(p) as ob:  # opening again adds nothing twice
        assert ob.offline_marks() == {e.query_id: OfflineMark(True, 5, 10.0)}
        cols = [r[1] for r in ob._db.execute("PRAGMA table_info(pending)")]
        assert cols[-3:] == ["offline_listed", "offline_list_version", "offline_list_age_s"]


def test_an_offline_mark_survives_sigkill_right_after_it_returned(tmp_path):
    p = tmp_path / "o.sqlite"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from firmware.agent.outbox import Outbox
        ob = Outbox({str(p)!r})
        e = ob.add(b"k" * 16, bytes(80), 5.0)
        ob.mark_offline(e.query_id, True, 9, 42.0)
        sys.stdout.write("marked\\n"); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == -signal.SIGKILL and r.stdout == "marked\n"
    with Outbox(p) as ob:
        assert ob.offline_marks() == {b"k" * 16: OfflineMark(True, 9, 42.0)}


def _restart(k: Kiosk, region: Region) -> Kiosk:
    """The same kiosk started again over the same state (its list stays installed), with
    query ids of its own."""
    k.close()
    return Kiosk(k.tmp, region=region, list_age_h=None, first_id=100)


def test_after_a_restart_an_online_no_match_for_an_offline_hit_is_cleared_online(tmp_path):
    region = Region()
    k = Kiosk(tmp_path, region=region)
    k.link(False)
    qid = k.scan(LISTED)
    assert k.machine.state == "possible_match_offline"
    k = _restart(k, region)  # the hit was not acknowledged: a power cut
    try:
        assert k.machine.answered_offline[qid].listed
        [start] = k.events("start")[-1:]
        assert start["pending"] == [1] and start["answered_offline"] == [1]
        # latched again (issue 14), with its list, and new documents refused meanwhile
        view = k.machine.view()
        assert (view.state, view.seq) == ("possible_match_offline", 1)
        assert view.offline is not None and view.offline.list_version == 3
        assert k.sig.shown[-1] == "possible_match_offline"
        [ev] = k.events("relatched")
        assert (ev["seq"], ev["qid"], ev["offline"]) == (1, qid.hex(), True)
        k.core.on_document(scan(UNLISTED))
        k.core.run_once(0)
        assert k.events("refused")[-1]["reason"] == "possible match not acknowledged"
        k.link(True)  # re-sent with the same id
        assert [q for q, _ in k.q.sent] == [qid]
        k.q.answer(qid, "NO_MATCH")
        k.core.run_once(0)
        view = k.machine.view()  # cleared on the screen that showed the hit
        assert (view.state, view.cleared, view.late, view.notices) == ("clear", True, True, ())
        [st] = [e for e in k.events("state") if e["cause"] == "cleared online"]
        assert st["seq"] == 1 and st["late"] is True
        [ev] = k.events("verdict")
        assert ev["offline_answer"] == "LISTED" and ev["cleared"] is True
        assert ev["offline_list_version"] == 3
        [a] = k.audit_lines("offline")
        [v] = k.audit_lines("verdict")
        assert a["qid"] == v["qid"] == qid.hex() and v["outcome"] == "NO_MATCH"
        assert k.outbox.pending() == [] and k.machine.answered_offline == {}
    finally:
        k.close()


def test_after_a_restart_an_online_hit_for_an_offline_miss_is_a_latched_late_hit(tmp_path):
    region = Region()
    k = Kiosk(tmp_path, region=region)
    k.link(False)
    qid = k.scan(UNLISTED)
    assert k.machine.state == "not_listed"
    k = _restart(k, region)
    try:
        assert k.machine.answered_offline[qid].listed is False
        k.link(True)
        k.q.answer(qid, "POSSIBLE_MATCH")
        k.core.run_once(0)
        assert k.machine.state == "possible_match" and k.machine.late
        k.advance(600.0)
        assert k.machine.state == "possible_match"  # latched until acknowledged
        [ev] = k.events("verdict")
        assert ev["offline_answer"] == "NOT_LISTED" and ev["cleared"] is False and ev["late"]
    finally:
        k.close()


def test_a_refused_list_is_an_event_with_its_reason_and_the_old_list_stays(tmp_path):
    k = Kiosk(tmp_path, region=Region())
    try:
        k.core.on_list_refused("rollback", "version 2 is not newer than 3")
        k.core.run_once(0)
        [ev] = k.events("list_refused")
        assert (ev["reason"], ev["message"]) == ("rollback", "version 2 is not newer than 3")
        assert ev["offline_list"]["list_version"] == 3
        k.link(False)
        k.scan(LISTED)
        [off] = k.events("offline")
        assert (off["outcome"], off["list_version"]) == ("LISTED", 3)
    finally:
        k.close()


def test_an_acknowledged_offline_hit_is_not_latched_again(tmp_path):
    region = Region()
    k = Kiosk(tmp_path, region=region)
    k.link(False)
    qid = k.scan(LISTED)
    k.sig.ack = True
    k.advance(0.1)
    assert k.machine.state == "idle"
    assert [a["qid"] for a in k.audit_lines("acknowledged")] == [qid.hex()]
    k = _restart(k, region)
    try:
        assert k.machine.state == "idle" and k.events("relatched") == []
        assert [e.query_id for e in k.outbox.pending()] == [qid]  # still to be re-checked
        assert verify_file(tmp_path / "audit.log", AUDIT_KEY).ok
    finally:
        k.close()


def test_an_offline_hit_behind_a_latched_match_comes_after_its_acknowledgement(tmp_path):
    """Scan 1 timed out (NOT LISTED offline, still pending); with the link down, scan 2 is
    an offline hit, latched; back online, scan 1 turns out a match (a sticky notice).
    After a crash: scan 1's match is on screen, scan 2's offline hit waits as a sticky
    notice and is latched again once scan 1 is acknowledged."""
    region = Region()
    k = Kiosk(tmp_path, region=region)
    k.link(True)
    first = k.scan(UNLISTED)
    k.q.answer(first, "TIMEOUT")
    k.core.run_once(0)
    assert k.machine.state == "not_listed"
    k.advance(10.1)
    k.link(False)
    hit = k.scan(LISTED)
    assert k.machine.state == "possible_match_offline"
    k.link(True)
    k.q.answer(first, "POSSIBLE_MATCH")
    k.core.run_once(0)
    assert [(n.seq, n.state) for n in k.machine.view().notices] == [(1, "possible_match")]
    k = _restart(k, region)
    try:
        view = k.machine.view()
        assert (view.state, view.seq) == ("possible_match", 1)
        assert [(n.seq, n.state, n.sticky) for n in view.notices] == [
            (2, "possible_match_offline", True)
        ]
        k.sig.ack = True
        k.advance(0.1)
        view = k.machine.view()
        assert (view.state, view.seq, view.notices) == ("possible_match_offline", 2, ())
        assert view.offline is not None and view.offline.list_version == 3
        k.sig.ack = True
        k.advance(0.1)
        assert k.machine.state == "idle"
        acked = [a["qid"] for a in k.audit_lines("acknowledged")]
        assert acked == [first.hex(), hit.hex()]
    finally:
        k.close()
