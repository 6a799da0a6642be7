"""Attack: a card holder (a stolen or seized kiosk's SD card) looks for the documents it
scanned. Defence: nothing identifying rests on the card (issue 13, part 4).

End to end, with the real agent process (as under systemd), a real Mosquitto from the
generated config with mutual TLS, the real regional and the scanner simulator's pty: the
kiosk scans documents that are answered at once, documents that stay pending while the
broker is down, and documents accepted just before a ``kill -9``. At each of these instants
every file the kiosk wrote (state directory with the outbox, its WAL and -shm, audit
segments, the offline list; the events file; the agent's console log, which is what the
journal would hold) is searched for every scanned document number, name and birth date,
as raw ASCII and in UTF-16/UTF-32, hex and base64: none is found. The pending ones are
still answered after the restart (re-sent as sealed boxes only the regional opens), with
the verdicts the generated samples say they must have, and the audit chain verifies.
"""

from __future__ import annotations

import base64
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.agent.audit import load_audit_key, verify_file
from firmware.agent.outbox import Outbox
from firmware.mrz import parse
from firmware.protocol.dockey import DocumentKey
from host_tools.localregion import AgentProcess
from tests.e2e.rig import acknowledge as _ack
from tests.e2e.rig import screen as _screen
from tests.support.localregion import TestRegion

pytestmark = pytest.mark.slow

TID = "kiosk-001"


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Iterator[TestRegion]:
    with TestRegion(
        tmp_path_factory.mktemp("card-e2e"), terminals=(TID,), records=2000, seed=31,
        sample_size=8,
    ) as r:  # fmt: skip
        r.provision().generate_list()
        r.start_broker()
        r.start_regional()
        yield r


def needles(lines: list[str]) -> dict[str, list[bytes]]:
    """What must not be on the card for one document: its number (and canonical key), its
    names, its birth date, its MRZ lines; each in the encodings a program would use."""
    r = parse(lines)
    dk = DocumentKey.from_mrz(r)
    texts = {dk.number, dk.canonical().decode(), *lines}
    names = [n for n in (r.surname or "", r.given_names or "") for n in n.split()]
    texts |= {n for n in names if len(n) >= 4}  # shorter names: only in wide encodings
    if r.surname and r.given_names:
        given = r.given_names.replace(" ", "<")
        texts |= {f"{r.given_names} {r.surname}", f"{r.surname}<<{given}"}
    bd = r.birth_date or ""
    assert len(bd) == 6, r
    check = lines[1][19] if len(lines) == 2 else lines[1][6]  # TD3 / TD1 check digit
    texts |= {bd + check, f"19{bd[:2]}-{bd[2:4]}-{bd[4:]}", f"20{bd[:2]}-{bd[2:4]}-{bd[4:]}"}
    texts |= {f"{bd[4:]}.{bd[2:4]}.19{bd[:2]}", f"{bd[4:]}/{bd[2:4]}/{bd[:2]}"}
    out: dict[str, list[bytes]] = {}
    for t in texts:
        raw = t.encode("ascii")
        forms = [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)]
        forms += [t.encode(enc) for enc in ("utf-16-le", "utf-16-be", "utf-32-le")]
        out[t] = forms
    for n in names:  # every name, however short, in the wide encodings
        out.setdefault(n, [n.encode(enc) for enc in ("utf-16-le", "utf-16-be", "utf-32-le")])
    return out


def kiosk_files(region: TestRegion) -> list[Path]:
    """Every regular file the kiosk wrote: ``agents/<tid>/`` holds its state directory,
    events file and console log."""
    home = region.dir / "agents" / TID
    return [p for p in sorted(home.rglob("*")) if p.is_file() and not p.is_symlink()]


def search(region: TestRegion, docs: list[list[str]], *, wal: bool = True) -> list[str]:
    """Each (file, document text, encoding index) found on the card. ``wal``: the outbox's
    WAL must be there (the agent running or killed: it is where rows were seen before)."""
    found = []
    files = kiosk_files(region)
    if wal:
        assert any(p.name == "outbox.sqlite-wal" for p in files), [p.name for p in files]
    data = {p: p.read_bytes() for p in files}
    for doc in docs:
        for text, forms in needles(doc).items():
            for i, form in enumerate(forms):
                found += [f"{p.name}: {text!r} (form {i})" for p, b in data.items() if form in b]
    return found


def _accepted(agent: AgentProcess, mark: int) -> dict:
    return agent.wait_event(
        lambda e: e["event"] == "document" and e.get("valid") is True, "the scan accepted", mark
    )


def _verdict(agent: AgentProcess, seq: int, mark: int) -> dict:
    return agent.wait_event(
        lambda e: e["event"] == "verdict" and e.get("seq") == seq, f"scan {seq}'s verdict", mark
    )


def test_card_holds_no_document_at_any_instant_and_pending_scans_are_answered(region):
    listed, unlisted = region.listed, region.unlisted
    scanned: list[list[str]] = []
    agent = region.start_agent(TID, signals="mock", display="mock")

    # 1. answered at once: a miss, a hit (acknowledged), a miss
    for doc, want in ((unlisted[0], "NO_MATCH"), (listed[0], "POSSIBLE_MATCH"), (unlisted[1], "NO_MATCH")):  # fmt: skip
        mark = agent.events.mark()
        agent.scanner.send(doc)
        scanned.append(doc)
        seq = _accepted(agent, mark)["seq"]
        assert _verdict(agent, seq, mark)["outcome"] == want
        if want == "POSSIBLE_MATCH":
            _ack(agent)
    assert search(region, scanned) == []  # agent running, resolved rows in the WAL

    # 2. pending while the broker is down
    mark = agent.events.mark()
    region.broker.stop()
    agent.wait_event(lambda e: e["event"] == "link" and e["up"] is False, "link down", mark)
    pending: dict[int, str] = {}
    for doc, want in ((unlisted[2], "NO_MATCH"), (listed[1], "POSSIBLE_MATCH")):
        mark = agent.events.mark()
        agent.scanner.send(doc)
        scanned.append(doc)
        pending[_accepted(agent, mark)["seq"]] = want
        if _screen(agent, mark)["after"] == "possible_match_offline":
            _ack(agent)
    assert search(region, scanned) == []  # pending rows, agent running

    # 3. accepted just before a kill -9 (never checkpointed, nothing closed)
    mark = agent.events.mark()
    agent.scanner.send(unlisted[3])
    scanned.append(unlisted[3])
    pending[_accepted(agent, mark)["seq"]] = "NO_MATCH"
    assert agent.kill() == -signal.SIGKILL
    assert search(region, scanned) == []  # after the crash: WAL, -shm and all
    with Outbox(region.state_dir(TID) / "outbox.sqlite") as ob:  # (this checkpoints it)
        assert sorted(e.seq for e in ob.pending()) == sorted(pending)

    # 4. restart (broker still down), then the broker returns: every pending scan answered
    agent = region.start_agent(TID, signals="mock", display="mock", link=False)
    start = [e for e in agent.events.events if e["event"] == "start"][-1]
    assert sorted(start["pending"]) == sorted(pending)
    mark = agent.events.mark()
    region.start_broker()
    for seq, want in sorted(pending.items()):
        v = _verdict(agent, seq, mark)
        assert v["outcome"] == want, v
        assert v["pid"] == agent.pid  # answered to the restarted process: a sealed resend
    if "POSSIBLE_MATCH" in pending.values():
        _ack(agent)
    assert search(region, scanned) == []

    assert agent.stop() == 0
    assert search(region, scanned, wal=False) == []  # after a clean close too
    with Outbox(region.state_dir(TID) / "outbox.sqlite") as ob:
        assert ob.pending() == []
    key = load_audit_key(region.bundle(TID) / "audit.key")
    rep = verify_file(region.state_dir(TID) / "audit.log", key)
    assert rep.ok, rep.problems
    assert rep.counts["verdict"] == len(scanned)


def test_the_search_finds_what_it_looks_for(tmp_path):
    """The search itself: a document written in any of its forms is found."""
    doc = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]
    forms = needles(doc)
    assert "L898902C3" in forms and "7408122" in forms and "1974-08-12" in forms
    assert "ERIKSSON" in forms and "ANNA" in forms and "MARIA" in forms
    assert "ERIKSSON<<ANNA<MARIA" in forms and "12.08.1974" in forms
    assert b"L898902C3" in forms["L898902C3"] and b"TDg5ODkwMkMz" in forms["L898902C3"]
    assert "ANNA".encode("utf-16-le") in forms["ANNA"]
