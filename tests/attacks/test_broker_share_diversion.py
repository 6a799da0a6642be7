"""Attack: stolen kiosks join the regional's shared subscription to divert queries.

With Mosquitto's ``acl_file`` every SUBSCRIBE was granted and only deliveries filtered:
a certificate holder in the regional's shared group took its round-robin share of every
terminal's queries, which the broker then dropped (4 such connections: 16 of 20 of an
honest kiosk's queries unanswered). The dynamic-security plugin checks SUBSCRIBE itself.
"""

from __future__ import annotations

from firmware.protocol import topics
from tests.provision.helpers import Peer

from .broker_rig import NOT_AUTHORIZED, attack_region, expected, honest_queries, hostile

__all__ = ["attack_region"]

#: Every filter a hostile client might use to get at queries (or anything else).
FILTERS = (
    "$share/regional/ft/v1/central/q/+",  # the regional's own group, by name
    "$share/other/ft/v1/central/q/+",
    "$share/regional/#",
    "ft/v1/central/q/+",
    "ft/v1/central/q/kiosk-001",
    "ft/v1/central/r/kiosk-001",
    "ft/v1/central/status/+",
    "ft/v1/central/alert",
    "#",
)


def test_four_hostile_connections_divert_no_query(attack_region, record_property):
    region = attack_region
    attackers = [hostile(region, f"kiosk-{i:03d}") for i in range(2, 6)]
    try:
        for peer in attackers:
            for f in FILTERS:
                (rc,) = peer.subscribe(f)
                assert rc.value == NOT_AUTHORIZED, (peer.name, f, rc)
        # the attackers are still connected while the honest kiosk asks
        verdicts = honest_queries(region, "kiosk-001", 10, 10)
        answered = sum(v in ("CLEAR", "POSSIBLE MATCH") for v in verdicts)
        record_property("honest_answered_of_20", answered)
        assert verdicts == expected(10, 10)
        assert not any(p.closed for p in attackers)
        q = topics.query_topic(region.region, "kiosk-001")
        assert all(p.count(q) == 0 for p in attackers)
        assert all(not p.received for p in attackers)
    finally:
        for p in attackers:
            p.close()


def test_the_alert_desk_certificate_cannot_join_the_group_either(attack_region):
    region = attack_region
    d = region.desk_dir

    desk = Peer(region.port, d / "ca.crt", d / "desk.crt", d / "desk.key", "hostile-desk")
    desk.connect()
    try:
        (rc,) = desk.subscribe("$share/regional/ft/v1/central/q/+")
        assert rc.value == NOT_AUTHORIZED
        (rc,) = desk.subscribe(topics.alert_topic(region.region))  # its own right stays
        assert not rc.is_failure
        assert honest_queries(region, "kiosk-001", 2, 3) == expected(2, 3)
    finally:
        desk.close()
