"""The supervisor's annunciator panels (docs/annunciator.md): ``add-annunciator``.

A panel is a MicroPython board at a site. Its directory holds, in the form MicroPython's
``tls`` module loads: its certificate and EC key in DER, the region's root CA in DER; the
site's lane key (the one the site's kiosks have); and annunciator.json, whose topics
come from :mod:`firmware.protocol.topics`. Its certificate CN is ``annunciator.<id>``
(the dot keeps it out of the terminal id space). The panels are recorded in the
registry (``annunciators``, JSON), so broker directories get their ACL lines
(:func:`~.broker_config.lane_acl_lines`) and ``revoke`` cuts a panel off like a kiosk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.errors import SetupError
from firmware.protocol import topics

from . import pki
from .authority import TERMINAL_CERT_DAYS, RegionAuthority
from .bundle import Bundle, write_bundle
from .registry import check_name
from .sitekey import LANE_KEY_FILE, ensure_site_key

REGISTRY_KEY = "annunciators"
CONFIG_FILE = "annunciator.json"
CERT_FILE = "panel.der"
KEY_FILE = "panel.key.der"
CA_FILE = "ca.der"
MAX_LANES = 16


def panel_cn(panel: str) -> str:
    return f"annunciator.{panel}"


@dataclass(frozen=True)
class Panel:
    id: str
    site: str
    lanes: tuple[str, ...]
    revoked: bool = False
    dir: str | None = None  # where add-annunciator wrote it (rotate-site-key rewrites it)


def panels(region: RegionAuthority) -> list[Panel]:
    raw = json.loads(region.reg.get(REGISTRY_KEY) or "{}")
    return [
        Panel(pid, p["site"], tuple(p["lanes"]), bool(p.get("revoked")), p.get("dir"))
        for pid, p in raw.items()
    ]


def find(region: RegionAuthority, panel: str) -> Panel | None:
    return next((p for p in panels(region) if p.id == panel), None)


def _save(region: RegionAuthority, items: Sequence[Panel]) -> None:
    doc = {
        p.id: {"site": p.site, "lanes": list(p.lanes), "revoked": p.revoked, "dir": p.dir}
        for p in items
    }
    region.reg.set(REGISTRY_KEY, json.dumps(doc, sort_keys=True))


def _check_lanes(region: RegionAuthority, site: str, lanes: Sequence[str]) -> tuple[str, ...]:
    if not lanes:
        raise SetupError("--lanes: name at least one kiosk, e.g. --lanes kiosk-001,kiosk-002")
    if len(lanes) > MAX_LANES:
        raise SetupError(f"--lanes: at most {MAX_LANES} lanes per panel")
    for i, tid in enumerate(lanes, 1):
        check_name(tid, f"--lanes item {i}")
        t = region.reg.terminal(tid)
        if t is None or t.revoked:
            raise SetupError(f"--lanes item {i} ({tid}): no active terminal of that id")
        if t.site != site:
            raise SetupError(
                f"--lanes item {i} ({tid}): that kiosk is at site {t.site or '(none)'!r}, "
                f"not {site!r}"
            )
    if len(set(lanes)) != len(lanes):
        raise SetupError("--lanes: a kiosk is named twice")
    return tuple(lanes)


def config_json(region: RegionAuthority, p: Panel, host: str, port: int) -> str:
    r = region.region
    doc = {
        "version": 1,
        "id": p.id,
        "client_id": panel_cn(p.id),
        "region": r,
        "site": p.site,
        "host": host,
        "port": port,
        "server_hostname": host,
        "ca": CA_FILE,
        "cert": CERT_FILE,
        "key": KEY_FILE,
        "lane_key": LANE_KEY_FILE,
        "ack_topic": topics.lane_ack_topic(r, p.site, p.id),
        "lanes": [{"id": tid, "topic": topics.lane_topic(r, p.site, tid)} for tid in p.lanes],
        "down_after_ms": 5500,
        "ack_interval_ms": 2000,
        "keepalive": 30,
        "backoff_min_ms": 500,
        "backoff_max_ms": 8000,
    }
    return json.dumps(doc, indent=1) + "\n"


def add_annunciator(
    region: RegionAuthority, panel: str, site: str, lanes: Sequence[str], out: Path
) -> Path:
    """Enrol a panel for ``lanes`` (kiosks of ``site``) and write its directory."""
    check_name(panel, "annunciator id")
    check_name(site, "--site")
    if find(region, panel) is not None:
        raise SetupError(f"annunciator {panel!r} already exists: pick another id")
    p = Panel(panel, site, _check_lanes(region, site, lanes))
    host, port = region.broker_address
    site_broker = region.reg.get(f"site:{site}:address")
    if site_broker:  # the site has its own broker, where its kiosks publish (as in _bundle)
        h, _, p_ = site_broker.rpartition(":")
        host, port = h, int(p_)
    key = pki.new_key()
    cert = pki.issue(
        region.issuer(),
        panel_cn(panel),
        key.public_key(),
        client=True,
        days=TERMINAL_CERT_DAYS,
        not_before=region.clock(),
    )
    root = x509.load_pem_x509_certificate(region.reg.path("ca/root.crt").read_bytes())
    b = Bundle()
    b.add(CERT_FILE, cert.public_bytes(serialization.Encoding.DER))
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    b.add(KEY_FILE, der_key, secret=True)
    b.add(CA_FILE, root.public_bytes(serialization.Encoding.DER))
    b.add(LANE_KEY_FILE, ensure_site_key(region.reg, site), secret=True)
    b.add(CONFIG_FILE, config_json(region, p, host, port))
    with region.reg.transaction():
        region._record(panel_cn(panel), cert)
        final = write_bundle(b, out=out)
        _save(region, [*panels(region), replace(p, dir=str(final))])
    return final


def revoke(region: RegionAuthority, panel: str) -> None:
    """Cut a panel off: its certificates into the CRL, its ACL lines gone."""
    p = find(region, panel)
    if p is None:
        raise SetupError(f"no annunciator {panel!r} in this registry")
    now = region.clock()
    region.issuer()
    with region.reg.transaction():
        for c in region.reg.certs(panel_cn(panel)):
            region.reg.revoke_cert(c.serial, now)
        _save(
            region,
            [q if q.id != panel else replace(q, revoked=True) for q in panels(region)],
        )
        region.sign_crl()
