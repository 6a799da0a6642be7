"""``fieldterm chaos``: its checks catch broken promises, and a short real run holds them."""

from __future__ import annotations

import re
from pathlib import Path

from firmware.cli import build_parser
from host_tools.chaos import fuzz_mqtt
from host_tools.chaos.run import Check, check, last_line, main_run, summarize, table
from host_tools.chaos.storage import accounted

EXPECTED = {"aa" * 8: "POSSIBLE_MATCH", "bb" * 8: "NO_MATCH"}
DKH = {"q1": "aa" * 8, "q2": "bb" * 8}


def _doc(seq: int) -> dict:
    return {"event": "document", "valid": True, "seq": seq, "qid": f"q{seq}"}


def _verdict(seq: int, outcome: str) -> dict:
    return {"event": "verdict", "seq": seq, "qid": f"q{seq}", "outcome": outcome}


def _state(seq: int, after: str, cause: str, before: str = "querying") -> dict:
    return {
        "event": "state", "seq": seq, "qid": f"q{seq}", "before": before, "after": after,
        "cause": cause,
    }  # fmt: skip


def test_a_run_that_kept_every_promise_passes() -> None:
    events = [
        _doc(1), _verdict(1, "POSSIBLE_MATCH"), _state(1, "possible_match", "verdict"),
        _doc(2), _verdict(2, "NO_MATCH"), _state(2, "clear", "verdict"),
        _state(2, "clear", "late verdict", "unknown"),  # a late NO_MATCH after UNKNOWN
        # a late hit for scan 1 noted while scan 2's CLEAR is on screen: not a CLEAR for 1
        _state(1, "clear", "late verdict", "clear"),
    ]  # fmt: skip
    c = check(events, EXPECTED, DKH)
    assert c.ok and c.accepted == c.answered == 2 and c.unverified == 0


def test_an_accepted_scan_with_no_verdict_is_lost_even_across_a_restart() -> None:
    events = [_doc(1), {"event": "start", "pending": [1, 7]}, _verdict(1, "POSSIBLE_MATCH")]
    c = check(events, EXPECTED, DKH)
    assert not c.ok and c.lost == [7]


def test_a_verdict_against_the_list_is_wrong() -> None:
    c = check([_doc(1), _verdict(1, "NO_MATCH")], EXPECTED, DKH)
    assert not c.ok and c.wrong == [{"seq": 1, "outcome": "NO_MATCH", "expected": "POSSIBLE_MATCH"}]


def test_clear_from_a_timeout_or_for_a_hit_is_caught() -> None:
    timeout = check(
        [_doc(2), _state(2, "clear", "timeout"), _verdict(2, "NO_MATCH")], EXPECTED, DKH
    )
    assert not timeout.ok and timeout.clear_without_no_match[0]["cause"] == "timeout"
    hit = check(
        [_doc(1), _verdict(1, "POSSIBLE_MATCH"), _state(1, "clear", "verdict")], EXPECTED, DKH
    )
    assert not hit.ok and len(hit.clear_without_no_match) == 1


def test_a_listed_document_answered_not_listed_offline_is_caught() -> None:
    offline = {"event": "offline", "seq": 1, "qid": "q1", "outcome": "NOT_LISTED"}
    c = check([_doc(1), offline, _verdict(1, "POSSIBLE_MATCH")], EXPECTED, DKH)
    assert not c.ok and c.offline_missed == [1]


def test_a_verdict_without_an_audit_row_is_unverified_not_passed_as_right() -> None:
    c = check([_doc(3), _verdict(3, "NO_MATCH")], EXPECTED, DKH)
    assert c.unverified == 1 and not c.wrong


def test_a_query_answered_twice_and_a_scan_number_reused_are_duplicates() -> None:
    events = [
        _doc(1), _verdict(1, "POSSIBLE_MATCH"), _verdict(1, "POSSIBLE_MATCH"),
        _doc(2), _verdict(2, "NO_MATCH"),
        {"event": "document", "valid": True, "seq": 2, "qid": "q9"},  # the counter restarted
        {"event": "verdict", "seq": 2, "qid": "q9", "outcome": "NO_MATCH"},
    ]  # fmt: skip
    c = check(events, EXPECTED, DKH)
    assert not c.ok
    assert sorted(c.duplicated) == ["query q1 answered 2 times", "scan 2 given to 2 documents"]


def test_a_lost_scan_named_by_the_agents_alarm_is_accounted_not_silent() -> None:
    alarm = {
        "event": "alarm",
        "message": "1 accepted scans have neither a verdict nor an outbox row (lost; query "
        "ids 0123456789ab): check them manually",
    }
    assert accounted({4: "0123456789abcdef", 5: "ffff"}, [alarm]) == {4}
    assert accounted({4: "aa"}, []) == set()


def _run(accepted: int, **kw: object) -> Check:
    c = Check(accepted=accepted, answered=accepted, recovery_s=kw.pop("recovery_s", 1.0))  # type: ignore[arg-type]
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_summary_counts_every_kind_of_failure_and_the_last_line_states_them() -> None:
    results = {
        "agent-kill": [_run(5, recovery_s=1.0, params=["agent SIGKILLed"]),
                       _run(4, recovery_s=3.0, lost=[7])],
        "disk-full": [_run(3, recovery_s=0.5, unmet=["no storage-full screen"],
                           crashes=["agent pid 9 exited 1"], duplicated=["query q answered 2 times"])],
        "loss": [_run(6, wrong=[{"seq": 1}], clear_without_no_match=[{"seq": 2}],
                      recovery_s=None)],
    }  # fmt: skip
    s = summarize(results)
    assert s["total"] == {"runs": 4, "accepted": 18, "lost": 1, "wrong": 3, "duplicated": 1,
                          "crashes": 1}  # fmt: skip
    assert not s["ok"]
    ak = s["scenarios"]["agent-kill"]
    assert ak["recovery_p50_s"] in (1.0, 3.0) and ak["recovery_max_s"] == 3.0 and not ak["ok"]
    assert s["scenarios"]["loss"]["recovery_max_s"] is None
    line = last_line(s)
    assert line == "chaos: 4 faults, 18 scans, 1 lost, 3 wrong, 1 duplicated, 1 crashes"
    out = table({**s, "seed": 3, "elapsed_s": 1.0}).splitlines()
    assert out[-1] == line
    assert re.match(r"agent-kill +2 +9 +1 +0 +0 +0 ", out[2])
    assert any("disk-full: unmet: no storage-full screen" in x for x in out)


def test_a_clean_run_summarizes_ok_with_zero_counts() -> None:
    s = summarize({"broker-kill": [_run(4), _run(2)]})
    assert s["ok"] and last_line(s) == (
        "chaos: 2 faults, 6 scans, 0 lost, 0 wrong, 0 duplicated, 0 crashes"
    )


def test_an_uncaught_traceback_is_a_crash_and_a_logged_one_is_reported(tmp_path: Path) -> None:
    from host_tools.chaos.run import _tracebacks  # noqa: PLC0415

    log = tmp_path / "agent.log"
    log.write_text("old run\nTraceback (most recent call last):\n  x\nValueError: before\n")
    mark = {log: log.stat().st_size}
    with log.open("a") as fh:
        fh.write(
            "2026-12-02 16:00:00,123 ERROR host_tools.sltd.store: cannot connect\n"
            'Traceback (most recent call last):\n  File "x", line 1\n'
            "psycopg.OperationalError: connection refused\n"
            "Exception in thread writer:\nTraceback (most recent call last):\n"
            '  File "y", line 2\nsqlite3.DatabaseError: file is not a database\n'
        )
    crashed, logged = _tracebacks(mark)
    assert crashed == ["traceback in agent.log: sqlite3.DatabaseError: file is not a database"]
    assert logged == ["traceback in agent.log: psycopg.OperationalError: connection refused"]


def test_a_logged_chained_traceback_is_one_logged_entry_not_a_crash(tmp_path: Path) -> None:
    """The regional's "lookup failed" while PostgreSQL restarts is one log record with a
    chained exception (three tracebacks joined by Python's chain lines): handled, and
    reported once by its last exception (a full pytest run counted it as 3 crashes)."""
    from host_tools.chaos.run import _tracebacks  # noqa: PLC0415

    log = tmp_path / "regional-0.log"
    log.write_text(
        "2026-12-02 18:18:49,264 ERROR host_tools.regional.service: lookup failed\n"
        'Traceback (most recent call last):\n  File "pgstore.py", line 120, in _read\n'
        "psycopg.errors.AdminShutdown: terminating connection\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "pgstore.py", line 97, in _conn\n'
        "psycopg.OperationalError: connection failed\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "service.py", line 189, in on_query\n'
        "firmware.errors.OperationError: cannot connect to the SLTD store\n"
        "Traceback (most recent call last):\n  File \"z\", line 3\nKeyError: 'x'\n"
    )
    crashed, logged = _tracebacks({log: 0})
    assert logged == [
        "traceback in regional-0.log: firmware.errors.OperationError: cannot connect to the "
        "SLTD store"
    ]
    assert crashed == ["traceback in regional-0.log: KeyError: 'x'"]


# -- regional-stores: the damage and its verdict ------------------------------------------


def _store(path: Path, rows: int = 400) -> None:
    """A WAL-mode SQLite file of several pages, checkpointed (every page in the file)."""
    import sqlite3  # noqa: PLC0415

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO audit(body) VALUES (?)", [("x" * 100,)] * rows)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def test_damage_to_a_regional_store_is_told_apart_by_sqlite_itself(tmp_path: Path) -> None:
    import random  # noqa: PLC0415

    from host_tools.chaos.storage import _damage_sqlite, _sqlite_sees_damage  # noqa: PLC0415

    rng = random.Random(3)
    seen = {"truncated": 0, "garbled": 0}
    for i in range(12):
        p = tmp_path / f"s{i}.sqlite"
        _store(p)
        assert _sqlite_sees_damage(p) is None  # sound before
        what = _damage_sqlite(p, rng)
        kind = "truncated" if " truncated " in what else "garbled"
        assert re.fullmatch(rf"s{i}\.sqlite (truncated \d+ -> \d+ bytes \(\d+ of \d+ pages\)"
                            r"|garbled: page \d+ of \d+, its first \d+ bytes)", what), what  # fmt: skip
        if _sqlite_sees_damage(p) is not None:
            seen[kind] += 1
    # a cut at a page boundary always loses b-tree pages; most page headers garbled show
    assert seen["truncated"] >= 3 and seen["garbled"] >= 1, seen


def test_a_damaged_regional_store_without_an_alarm_is_an_unmet_promise(tmp_path: Path) -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    from host_tools.chaos.storage import regional_stores_verify  # noqa: PLC0415

    target = tmp_path / "regional-audit.sqlite"
    alarms: list[str] = []
    proc = SimpleNamespace(running=lambda: True, health=lambda: {"alarms": alarms})
    ctx = SimpleNamespace(
        expect={"regional_store": target, "sqlite_sees": "database disk image is malformed"},
        region=SimpleNamespace(regionals=[proc]),
        audit_notes=[],
    )
    unmet = regional_stores_verify(ctx, [])  # type: ignore[arg-type]
    assert unmet == [
        "regional stores: regional-audit.sqlite damaged and no alarm in the health",
        "regional stores: regional-audit.sqlite damaged and not put aside",
    ]
    alarms.append("regional audit trail regional-audit.sqlite is damaged (x); put aside as y")
    (tmp_path / "regional-audit.sqlite.bad-20261203T000000Z").write_bytes(b"")
    assert regional_stores_verify(ctx, []) == []  # type: ignore[arg-type]
    ctx.expect["sqlite_sees"] = None  # damage SQLite cannot see: only a running regional
    alarms.clear()
    assert regional_stores_verify(ctx, []) == []  # type: ignore[arg-type]
    proc.running = lambda: False
    assert regional_stores_verify(ctx, []) == [  # type: ignore[arg-type]
        "regional stores: no regional process runs after the restart"
    ]


# -- --parallel: sharing out and merging ----------------------------------------------------


def test_scenarios_are_shared_out_longest_first_and_never_split() -> None:
    from host_tools.chaos.parallel import share_out  # noqa: PLC0415

    costs = {"partition": 1640.0, "loss": 1000.0, "delay": 1000.0, "flap": 1000.0,
             "agent-kill": 600.0, "wal-lost": 500.0, "corrupt-files": 500.0}  # fmt: skip
    groups = share_out(costs, 3)
    assert sorted(n for g in groups for n in g) == sorted(costs)  # each once, none split
    loads = sorted(sum(costs[n] for n in g) for g in groups)
    assert groups[0][0] == "partition" and loads == [2000.0, 2100.0, 2140.0]
    assert share_out({"a": 1.0}, 4) == [["a"]]  # no empty children


def test_children_get_their_own_seed_link_and_scenarios_on_a_replayable_line() -> None:
    from host_tools.chaos.parallel import FIRST_LINK_INDEX, plan  # noqa: PLC0415

    names = ["partition", "loss", "agent-kill"]
    kids = plan(names, {"partition": 60.0, "loss": 30.0, "agent-kill": 2.0}.__getitem__, k=2,
                seed=5, repeat=20, scans=8, passthrough=["--store", "pg"])  # fmt: skip
    assert [c.scenarios for c in kids] == [("partition",), ("loss", "agent-kill")]
    for c in kids:
        argv = list(c.argv)
        assert argv[argv.index("--link-index") + 1] == str(FIRST_LINK_INDEX + c.index)
        assert argv[argv.index("--seed") + 1] == str(c.seed)
        assert argv[argv.index("--repeat") + 1] == "20" and "--json" in argv
        assert argv[argv.index("--store") + 1] == "pg"
        assert [argv[i + 1] for i, a in enumerate(argv) if a == "--scenario"] == list(c.scenarios)
    assert len({c.seed for c in kids}) == 2
    assert [c.seed for c in plan(names, lambda n: 1.0, k=2, seed=5, repeat=1, scans=1,
                                 passthrough=[])] == [c.seed for c in kids]  # fmt: skip


def test_merged_children_count_everything_and_fail_if_any_failed() -> None:
    from host_tools.chaos.parallel import merge  # noqa: PLC0415

    a = summarize({"agent-kill": [Check(accepted=3, answered=3)]})
    b = summarize({"loss": [Check(accepted=4, answered=3, lost=[7])]})
    a["link"], b["link"] = (
        {"up_dropped": 2, "down_dropped": 1},
        {"up_dropped": 5, "down_dropped": 0},
    )
    m = merge([a, b])
    assert sorted(m["scenarios"]) == ["agent-kill", "loss"]
    assert m["total"] == {"runs": 2, "accepted": 7, "lost": 1, "wrong": 0, "duplicated": 0,
                          "crashes": 0}  # fmt: skip
    assert m["ok"] is False and m["link"] == {"up_dropped": 7, "down_dropped": 1}
    assert last_line(m) == "chaos: 2 faults, 7 scans, 1 lost, 0 wrong, 0 duplicated, 0 crashes"
    assert merge([a])["ok"] is True and merge([])["ok"] is False


def test_an_alarm_is_due_for_audit_damage_only_where_no_earlier_run_hit() -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    from host_tools.chaos.storage import _lines_touched, corrupt_verify  # noqa: PLC0415

    data = b"aaaa\nbbbb\ncccc\n"
    assert _lines_touched(data, 0, 2) == {0} and _lines_touched(data, 3, 6) == {0, 5}
    assert _lines_touched(data, 5, 10) == {5} and _lines_touched(data, 5, 11) == {5, 10}

    def unmet(params: list[str], expect: dict, events: list[dict]) -> list[str]:
        ctx = SimpleNamespace(params=params, expect=expect, audit_notes=[],
                              state_dir=Path("/nonexistent"))  # fmt: skip
        return corrupt_verify(ctx, [{"event": "start"}, *events])  # type: ignore[arg-type]

    no_alarm = "corrupt files: damaged files but no alarm was raised"
    garbled = ["audit.log garbled: 52 bytes at 6313 of 44907"]
    assert unmet(garbled, {"audit_new_damage": True}, []) == [no_alarm]
    assert unmet(garbled, {"audit_new_damage": True}, [{"event": "alarm"}]) == []
    assert unmet(garbled, {"audit_new_damage": False}, []) == []  # reported by an earlier run
    assert unmet(["audit.log truncated 900 -> 10 bytes"], {}, []) == [no_alarm]
    assert unmet(["outbox.sqlite truncated 4096 -> 1104 bytes"], {"outbox_seen": None}, []) == []
    assert unmet(["outbox.sqlite truncated 8192 -> 4096 bytes"], {"outbox_seen": "malformed"},
                 []) == [no_alarm]  # fmt: skip


def test_fuzz_mqtt_is_a_chaos_subcommand_and_scenarios_stay_the_default():
    argv = ["chaos", "fuzz-mqtt", "--payloads", "5", "--seed", "3"]
    args = build_parser("chaos").parse_args(argv)
    assert args.func is fuzz_mqtt.main_args and (args.payloads, args.seed) == (5, 3)
    args = build_parser("chaos").parse_args(["chaos", "--repeat", "3"])
    assert args.func is main_run and args.repeat == 3 and args.chaos_command is None
