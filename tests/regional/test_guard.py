"""The regional's refusal guard (negative cache + per-terminal refusal rate limit) and the
audit trail's retention, as units with injected clocks and a real SQLite file."""

from __future__ import annotations

import sqlite3
import time

from host_tools.regional.audit import AuditTrail
from host_tools.regional.guard import RefusalGuard


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def envelope(ticket: bytes) -> bytes:
    """A query envelope's prefix as docs/protocol.md lays it out (the rest is opaque)."""
    return b"\x01\x51" + len(ticket).to_bytes(2, "big") + ticket + bytes(60)


def never_open(_ticket: bytes) -> bool:
    return False


def test_a_flooding_terminal_is_limited_and_others_are_not():
    clock = Clock()
    g = RefusalGuard(refusal_burst=5, refusal_rate=2.0, clock=clock)
    for i in range(5):
        p = envelope(b"junk%d" % i)
        assert g.check("kiosk-666", p, never_open) == ""
        g.refused("kiosk-666", p, "ticket")
    assert g.check("kiosk-666", envelope(b"new junk"), never_open) == "rate_limited"
    assert g.limited("kiosk-666") and not g.limited("kiosk-001")
    assert g.check("kiosk-001", envelope(b"honest"), never_open) == ""
    # an already open session of the limited terminal still goes through (AEAD only)
    assert g.check("kiosk-666", envelope(b"open"), lambda t: t == b"open") == ""
    clock.t += 0.5  # refills at 2/s: one token
    assert g.check("kiosk-666", envelope(b"more junk"), never_open) == ""


def test_a_refused_ticket_is_refused_again_from_the_cache_with_its_reason():
    clock = Clock()
    g = RefusalGuard(refusal_burst=100, negative_ttl=60.0, clock=clock)
    bad = envelope(b"signed by nobody")
    g.refused("kiosk-002", bad, "signature")
    assert len(g) == 1
    assert g.check("kiosk-002", bad, never_open) == "signature" and g.hits == 1
    g.refused("kiosk-002", envelope(b"x"), "aead")  # not the ticket's fault: not cached
    g.refused("kiosk-002", envelope(b"y"), "window")
    assert len(g) == 1
    clock.t += 61  # the entry expires
    assert g.check("kiosk-002", bad, never_open) == ""
    g.refused("kiosk-002", bad, "unknown_terminal")
    g.forget_tickets()  # terminals.json changed
    assert g.check("kiosk-002", bad, never_open) == ""


def test_negative_cache_and_buckets_are_bounded():
    g = RefusalGuard(refusal_burst=10**6, max_negative=100, max_terminals=10, clock=Clock())
    for i in range(1000):
        g.refused(f"t{i}", envelope(b"%d" % i), "ticket")
    assert len(g) == 100 and len(g._buckets) == 10


def test_audit_rows_older_than_the_retention_are_deleted(tmp_path):
    now = time.time()
    db = tmp_path / "audit.sqlite"
    old = AuditTrail(db, retention=None)
    for age_days in (400, 366, 364, 1):
        old.record(now - age_days * 86400, "kiosk-001", None, None, f"NO_MATCH-{age_days}", 1)
    old.close()
    trail = AuditTrail(db, retention=365 * 86400.0, prune_every=0.05, clock=lambda: now)
    end = time.monotonic() + 10
    while trail.pruned < 2 and time.monotonic() < end:
        time.sleep(0.02)
    trail.record(now, "kiosk-001", None, None, "NO_MATCH-0", 1)
    trail.close()
    with sqlite3.connect(db) as con:
        kept = [r[0] for r in con.execute("SELECT outcome FROM audit ORDER BY t")]
    assert kept == ["NO_MATCH-364", "NO_MATCH-1", "NO_MATCH-0"]
    assert trail.pruned == 2


def test_the_retention_is_a_setting(tmp_path):
    from host_tools.regional.config import RegionalConfig  # noqa: PLC0415
    from tests.support.localregion import TestRegion  # noqa: PLC0415

    with TestRegion(tmp_path / "r", records=50) as r:
        r.provision()
        cfg = RegionalConfig.load(r.regional_toml)
        assert cfg.audit_retention_days == 365.0
        env = {"FIELDTERM_REGIONAL__AUDIT_RETENTION_DAYS": "30"}
        assert RegionalConfig.load(r.regional_toml, environ=env).audit_retention_days == 30.0
