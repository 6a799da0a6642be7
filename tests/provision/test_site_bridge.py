"""A site broker bridged to the regional broker carries only its own site's terminals, on
the site's own route upstream: a kiosk's ``q/<tid>`` and ``r/<tid>`` on its site broker are
``site/<site>/q/<tid>`` and ``site/<site>/r/<tid>`` on the regional broker."""

from __future__ import annotations

import json
import tomllib

from tests.support.broker import Mosquitto, free_port

from .helpers import Peer


def test_site_bridge_carries_queries_and_responses(region, broker):
    site_bundle = region.root / "bundles" / "kiosk-101"
    assert (
        region.cli("add-terminal", "kiosk-101", "--site", "post-7", "--out", str(site_bundle)) == 0
    )
    site_dir, site_port = region.root / "site-post-7", free_port()
    assert (
        region.cli(
            "broker-config",
            "--out",
            str(site_dir),
            "--site-bridge",
            "post-7",
            "--upstream",
            f"127.0.0.1:{region.port}",
            "--host",
            "127.0.0.1",
            "--port",
            str(site_port),
        )
        == 0
    )
    port_in_bundle = tomllib.loads((site_bundle / "terminal.toml").read_text())["broker"]["port"]
    assert port_in_bundle == site_port  # the site's bundles now point at the site broker
    dyn = json.loads((region.broker_dir / "dynamic-security.json").read_text())
    assert "bridge.post-7" in {c["username"] for c in dyn["clients"]}
    site_acl = (site_dir / "mosquitto.acl").read_text()
    assert "user kiosk-101" in site_acl and "kiosk-001" not in site_acl
    broker.reload()  # the regional broker now admits the bridge
    site = Mosquitto(site_dir, port=site_port, conf_text=(site_dir / "mosquitto.conf").read_text())
    site.start()
    regional = region.regional_peer().connect()
    kiosk = Peer.from_bundle(site_port, site_bundle, "kiosk-101").connect()
    try:
        regional.subscribe("$share/regional/ft/v1/central/site/+/q/+")
        kiosk.subscribe("ft/v1/central/r/kiosk-101")
        q, r = "ft/v1/central/q/kiosk-101", "ft/v1/central/r/kiosk-101"
        up, down = "ft/v1/central/site/post-7/q/kiosk-101", "ft/v1/central/site/post-7/r/kiosk-101"
        for _ in range(100):  # until the bridge is up; bounded
            kiosk.publish(q, b"q")
            if regional.got(up, within=0.2):
                break
        assert regional.count(up) > 0, site.logs()
        for _ in range(100):
            regional.publish(down, b"verdict")
            if kiosk.got(r, within=0.2):
                break
        assert kiosk.count(r) > 0
        # the plain response topic is not the bridge's: nothing comes down that way
        regional.publish(r, b"not by this route")
        # the bridge may not speak for a terminal of another site
        assert kiosk.publish("ft/v1/central/q/kiosk-001").is_failure
        # a terminal added to the site later needs only ACL reloads on both brokers
        late = region.root / "bundles" / "kiosk-102"
        assert region.cli("add-terminal", "kiosk-102", "--site", "post-7", "--out", str(late)) == 0
        broker.reload()
        site.reload()
        assert tomllib.loads((late / "terminal.toml").read_text())["broker"]["port"] == site_port
        k102 = Peer.from_bundle(site_port, late, "kiosk-102").connect()
        try:
            q2, r2 = "ft/v1/central/q/kiosk-102", "ft/v1/central/r/kiosk-102"
            up2 = "ft/v1/central/site/post-7/q/kiosk-102"
            down2 = "ft/v1/central/site/post-7/r/kiosk-102"
            k102.subscribe(r2)
            kiosk.subscribe(r2)  # granted in the SUBACK, never delivered (site ACL)
            for _ in range(100):
                k102.publish(q2, b"q")
                if regional.got(up2, within=0.2):
                    break
            assert regional.count(up2) > 0
            for _ in range(100):
                regional.publish(down2, b"verdict")
                if k102.got(r2, within=0.2):
                    break
            assert k102.count(r2) > 0
            assert kiosk.count(r2) == 0
            # the answer sent by the plain route earlier never reached the kiosk
            assert kiosk.received.count((r, b"not by this route")) == 0
        finally:
            k102.close()
    finally:
        kiosk.close()
        regional.close()
        site.stop()
