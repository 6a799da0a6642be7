"""The console's parts without a browser: the operator audit chain, the hit workflow,
login throttling, sessions, accounts, the fleet's judgement and autoescaping."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from firmware.cli import main
from firmware.errors import ConfigError, SetupError
from host_tools.console import app as console_app
from host_tools.console import i18n, oplog
from host_tools.console.auth import Sessions, Throttle
from host_tools.console.fleet import Fleet
from host_tools.console.hits import HitStore, WorkflowError
from host_tools.provision.operators import Operators


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def alert(qid: str = "q1", **kw):
    body = {
        "v": 1, "region": "central", "terminal": "kiosk-001", "query_id": qid, "dkh": "ab" * 16,
        "reference": "REF-1", "status": "STOLEN", "reporting_country": "NOR",
        "list_version": 7, "t": 1_000_000.0,
    }  # fmt: skip
    return {**body, **kw}


# -- operator audit ---------------------------------------------------------------------
def test_audit_chain_verifies_and_detects_an_edit_a_removal_and_a_reorder(tmp_path):
    path = tmp_path / "audit.log"
    log = oplog.OperatorLog(path, clock=Clock())
    for i in range(4):
        log.append("sup", "hit_acknowledged", f"hit:{i}", note=f"n{i}")
    v = oplog.verify(path)
    assert v.ok and v.entries == 4 and v.head == log.head
    lines = path.read_text().splitlines()

    edited = [*lines]
    e = json.loads(edited[1])
    e["who"] = "view"
    edited[1] = json.dumps(e, sort_keys=True)
    path.write_text("\n".join(edited) + "\n")
    assert oplog.verify(path).error == "line 2: hash does not match its content"

    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    assert oplog.verify(path).error == "line 2: does not follow line 1"

    path.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert not oplog.verify(path).ok


def test_audit_log_refuses_to_append_to_a_broken_chain(tmp_path):
    path = tmp_path / "audit.log"
    oplog.OperatorLog(path).append("sup", "login")
    path.write_text(path.read_text().replace('"login"', '"logout"'))
    with pytest.raises(ValueError, match="does not verify"):
        oplog.OperatorLog(path)


# -- hits ---------------------------------------------------------------------------------
def test_hit_workflow_order_and_history(tmp_path):
    clock = Clock()
    store = HitStore(tmp_path / "c.sqlite", clock=clock)
    hit = store.add(alert(), site="north", late=False)
    assert hit is not None and hit.state == "new"
    assert store.add(alert(), site="north", late=False) is None  # the same query: once
    with pytest.raises(WorkflowError, match="cannot become false_match"):
        store.step(hit.id, "false_match", "", "sup")  # must be acknowledged first
    clock.t += 5
    store.step(hit.id, "acknowledged", "going", "sup")
    done = store.step(hit.id, "false_match", "re-issued", "boss")
    assert done.closed
    assert [(s.state, s.note, s.who, s.t) for s in done.steps] == [
        ("acknowledged", "going", "sup", clock.t),
        ("false_match", "re-issued", "boss", clock.t),
    ]
    with pytest.raises(WorkflowError):
        store.step(hit.id, "confirmed", "", "sup")  # closed stays closed
    with pytest.raises(WorkflowError, match="no hit 99"):
        store.step(99, "acknowledged", "", "sup")


def test_unacknowledged_hit_is_escalated_after_n_minutes(tmp_path):
    clock = Clock()
    store = HitStore(tmp_path / "c.sqlite", clock=clock)
    hit = store.add(alert(), site=None, late=True)
    assert hit is not None and hit.late
    assert not store.get(hit.id).escalated(clock.t + 299, 300)
    assert store.get(hit.id).escalated(clock.t + 300, 300)
    store.step(hit.id, "acknowledged", "", "sup")
    assert not store.get(hit.id).escalated(clock.t + 9999, 300)


# -- throttling and sessions ---------------------------------------------------------------
def test_five_failures_a_minute_lock_the_account_and_the_address():
    clock = Clock()
    th = Throttle(limit=5, window=60, lockout=300, clock=clock)
    for _ in range(5):
        assert th.locked("sup", "10.0.0.1") == 0
        th.failed("sup", "10.0.0.1")
        clock.t += 1
    assert th.locked("sup", "10.0.0.1") > 0  # the sixth attempt
    assert th.locked("sup", "10.0.0.2") > 0  # the account, from anywhere
    assert th.locked("other", "10.0.0.1") > 0  # the address, for any account
    assert th.locked("other", "10.0.0.2") == 0
    clock.t += 301
    assert th.locked("sup", "10.0.0.1") == 0


def test_failures_spread_over_more_than_a_minute_do_not_lock():
    clock = Clock()
    th = Throttle(clock=clock)
    for _ in range(10):
        th.failed("sup", "a")
        clock.t += 13  # at most 5 within any 60 s
    assert th.locked("sup", "a") == 0


def test_sessions_expire_when_idle():
    clock = Clock()
    ss = Sessions(idle=60, lifetime=3600, clock=clock)
    s = ss.new("sup", "supervisor", "en")
    assert ss.get(s.token) is s and s.csrf_ok(s.csrf) and not s.csrf_ok("") and not s.csrf_ok(None)
    clock.t += 61
    assert ss.get(s.token) is None


# -- accounts -------------------------------------------------------------------------------
def test_operator_accounts_argon2id(tmp_path):
    ops = Operators(tmp_path / "operators.json")
    ops.add("ivanova", "supervisor", "long enough password")
    doc = (tmp_path / "operators.json").read_text()
    assert "long enough password" not in doc and "$argon2id$" in doc
    assert (tmp_path / "operators.json").stat().st_mode & 0o777 == 0o600
    assert ops.verify("ivanova", "long enough password").role == "supervisor"
    assert ops.verify("ivanova", "wrong password!!") is None
    assert ops.verify("nobody", "long enough password") is None
    ops.passwd("ivanova", "another long one")
    assert ops.verify("ivanova", "another long one") is not None
    with pytest.raises(ConfigError, match="at least 10"):
        ops.add("petrov", "viewer", "short")
    with pytest.raises(ConfigError, match="role"):
        ops.add("petrov", "admin", "long enough password")
    with pytest.raises(ConfigError, match="not a valid operator name"):
        ops.add("<b>x</b>", "viewer", "long enough password")
    with pytest.raises(SetupError, match="exists"):
        ops.add("ivanova", "viewer", "long enough password")
    ops.remove("ivanova")
    assert ops.load() == {}


# -- fleet ----------------------------------------------------------------------------------
def test_fleet_online_offline_and_problems(tmp_path):
    clock = Clock()
    f = tmp_path / "fleet.json"
    f.write_text(json.dumps({"terminals": [
        {"id": "k1", "site": "north", "revoked": False, "cert_not_after": "2099-01-01T00:00:00Z"},
        {"id": "k2", "site": "south", "revoked": True, "cert_not_after": None},
    ]}))  # fmt: skip
    fleet = Fleet(f, offline_after=30, clock=clock)
    fleet.live_since = clock.t
    # the retained status: who and whether online, no figures
    assert fleet.on_status("k1", {"terminal": "k1", "state": "online"})
    row = {r["id"]: r for r in fleet.rows()}["k1"]
    assert row["online"] and row["pending"] is None and row["clock_offset_s"] is None
    # the sealed telemetry (opened): every figure
    health = {"state": "online", "t": clock.t + 45, "pending": 7, "scanner": True,
              "offline_list": {"list_version": 3, "list_age_s": 60, "stale": False}}  # fmt: skip
    assert fleet.on_status("k1", health, source="telemetry") is False  # it was online
    rows = {r["id"]: r for r in fleet.rows()}
    assert rows["k1"]["online"] and rows["k1"]["clock_offset_s"] == pytest.approx(45)
    assert rows["k1"]["problems"] == ["clock", "outbox"]
    assert rows["k2"]["problems"] == ["revoked", "offline"]
    # a status beat meanwhile changes nothing; the figures stay the telemetry's
    assert fleet.on_status("k1", {"terminal": "k1", "state": "online"}) is False
    assert {r["id"]: r for r in fleet.rows()}["k1"]["pending"] == 7
    clock.t += 9  # telemetry comes every 2 s: silent for longer is offline
    assert not {r["id"]: r for r in fleet.rows()}["k1"]["online"]
    seen = {r["id"]: r for r in fleet.rows()}["k1"]["last_seen"]
    clock.t += 5
    assert fleet.on_status("k1", {"terminal": "k1", "state": "offline"}) is False
    row = {r["id"]: r for r in fleet.rows()}["k1"]
    assert row["last_seen"] == seen and row["pending"] == 7  # not the will's time
    assert fleet.on_status("k1", {**health, "t": clock.t, "pending": 0}, source="telemetry")
    assert {r["id"]: r for r in fleet.rows()}["k1"]["problems"] == []


# -- pages ----------------------------------------------------------------------------------
def test_templates_escape_hostile_content(tmp_path):
    store = HitStore(tmp_path / "c.sqlite")
    store.add(alert(reference="<script>x()</script>", terminal="<img src=x onerror=y()>"),
              site="<b>site</b>", late=False)  # fmt: skip
    hit = store.all()[0]
    store.step(hit.id, "acknowledged", '"><svg onload=z()>', "sup")
    sess = Sessions().new("sup", "supervisor", "en")
    html = console_app._env().get_template("_hits.html").render(
        s=i18n.strings("en"), lang="en", session=sess, hits=store.all(), now=0.0,
        escalate_after=300.0, next_steps=console_app.NEXT, closed=console_app.CLOSED,
        csrf=sess.csrf,
    )  # fmt: skip
    for raw in ("<script>", "<img", "<b>site", "<svg"):
        assert raw not in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "&lt;svg onload=z()&gt;" in html


def test_every_language_has_every_key():
    en = i18n.strings("en")
    for lang in i18n.LANGUAGES:
        assert set(i18n.strings(lang)) == set(en)
    assert i18n.strings("ru")["nav_hits"] == "Совпадения"
    assert i18n.strings("kk")["possible_match"] == "МҮМКІН СӘЙКЕСТІК"  # the kiosk's words


def test_the_late_badge_has_its_own_word_in_every_language():
    doc = tomllib.loads((Path(i18n.__file__).with_name("strings.toml")).read_text())
    words = {lang: doc[lang]["late"] for lang in i18n.LANGUAGES}
    assert len(set(words.values())) == len(i18n.LANGUAGES), words  # none falls back


def test_kiosk_words_match_the_kiosk_catalogue():
    """The words copied from firmware/signals/messages.toml are still the kiosk's."""
    cat = tomllib.loads((Path(__file__).parents[2] / "firmware/signals/messages.toml").read_text())
    for lang in ("ru", "kk", "ky", "uz", "tg", "tk"):
        assert i18n.strings(lang)["possible_match"] == cat[lang]["title.possible_match"]


def test_verify_audit_command(tmp_path, capsys):
    (tmp_path / "desk.toml").write_text("")  # only its directory is used by --verify-audit
    log = oplog.OperatorLog(tmp_path / "operator-audit.log")
    log.append("sup", "login", "127.0.0.1")
    log.append("sup", "hit_acknowledged", "hit:1", note="x")
    assert main(["console", "--config", str(tmp_path / "desk.toml"), "--verify-audit"]) == 0
    assert f"2 entries, chain intact, head {log.head}" in capsys.readouterr().out
    path = tmp_path / "operator-audit.log"
    path.write_text(path.read_text().replace('"x"', '"y"'))
    assert main(["console", "--config", str(tmp_path / "desk.toml"), "--verify-audit"]) == 1
    assert "BROKEN after 1 good entries: line 2" in capsys.readouterr().out
