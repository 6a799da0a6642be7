"""MQTT topic names: the only place where fieldterm topic strings are built or parsed.

Tree (see docs/architecture.md): ``ft/v1/<region>/{q,r,status}/<terminal>``,
``ft/v1/<region>/alert`` and ``ft/v1/<region>/list/...`` (the signed offline list).
Behind a site broker, a kiosk still uses ``q/<terminal>`` and ``r/<terminal>``; its
site's bridge maps them to ``ft/v1/<region>/site/<site>/{q,r}/<terminal>`` on the regional
broker, and the regional answers a query on the response topic of the route it came by.
So each response reaches exactly one bridge, instead of every bridge subscribing to every
response and the broker checking each against every bridge's ACL.
The broker ACL and bridge config (host_tools/provision) are built from these functions too. Ids are lower-case ``[a-z0-9][a-z0-9-]{0,62}`` so they can never
contain MQTT wildcards or level separators, which keeps ACL patterns exact.
"""

from __future__ import annotations

import re

from firmware.errors import ConfigError, EnvelopeError

ID_RE = r"[a-z0-9][a-z0-9-]{0,62}"
_ID = re.compile(ID_RE)
PREFIX = "ft/v1"


def validate_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid region/terminal id, else raise :class:`ConfigError`
    naming ``kind`` (ConfigError is also a ValueError)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ConfigError(f"must match {ID_RE} (lower-case letters, digits, '-')", field=kind)
    return value


def query_topic(region: str, terminal: str) -> str:
    """``ft/v1/<region>/q/<terminal>``: a terminal publishes its sealed queries here."""
    return f"{PREFIX}/{validate_id('region', region)}/q/{validate_id('terminal', terminal)}"


def response_topic(region: str, terminal: str) -> str:
    """``ft/v1/<region>/r/<terminal>``: the regional service answers here."""
    return f"{PREFIX}/{validate_id('region', region)}/r/{validate_id('terminal', terminal)}"


def status_topic(region: str, terminal: str) -> str:
    """``ft/v1/<region>/status/<terminal>``: retained status and last will."""
    return f"{PREFIX}/{validate_id('region', region)}/status/{validate_id('terminal', terminal)}"


def alert_topic(region: str) -> str:
    """``ft/v1/<region>/alert``: hit alerts published by the regional service."""
    return f"{PREFIX}/{validate_id('region', region)}/alert"


def list_filter(region: str) -> str:
    """``ft/v1/<region>/list/#``: everything under the signed offline list's subtree."""
    return f"{PREFIX}/{validate_id('region', region)}/list/#"


PER_TERMINAL_KINDS = ("q", "r", "status")


def per_terminal_filter(region: str, kind: str) -> str:
    """``ft/v1/<region>/<kind>/+`` for ``kind`` in q, r, status: every terminal's topic."""
    if kind not in PER_TERMINAL_KINDS:
        raise ValueError(f"kind must be one of {PER_TERMINAL_KINDS}, not {kind!r}")
    return f"{PREFIX}/{validate_id('region', region)}/{kind}/+"


def per_terminal_prefix(region: str, kind: str, site: str | None = None) -> str:
    """``ft/v1/<region>/<kind>/``, or ``ft/v1/<region>/site/<site>/<kind>/`` for a site's
    bridged route: the prefixes a bridge maps between (kind q or r)."""
    if kind not in ("q", "r"):
        raise ValueError(f"kind must be q or r, not {kind!r}")
    head = f"{PREFIX}/{validate_id('region', region)}/"
    if site is not None:
        head += f"site/{validate_id('site', site)}/"
    return f"{head}{kind}/"


def site_topic(region: str, site: str, kind: str, terminal: str) -> str:
    """``ft/v1/<region>/site/<site>/<kind>/<terminal>``: a bridged kiosk's query (q) or
    response (r) topic on the regional broker."""
    return per_terminal_prefix(region, kind, site) + validate_id("terminal", terminal)


def site_filter(region: str, kind: str, site: str | None = None) -> str:
    """``ft/v1/<region>/site/<site>/<kind>/+`` (one site) or ``.../site/+/<kind>/+`` (all)."""
    if site is not None:
        return per_terminal_prefix(region, kind, site) + "+"
    if kind not in ("q", "r"):
        raise ValueError(f"kind must be q or r, not {kind!r}")
    return f"{PREFIX}/{validate_id('region', region)}/site/+/{kind}/+"


def query_subscriptions(region: str, group: str | None) -> tuple[str, str]:
    """The regional's subscriptions: the direct kiosks' queries and the bridged sites',
    each ``$share/<group>/...`` (or plain without a group)."""
    plain = (per_terminal_filter(region, "q"), site_filter(region, "q"))
    if group is None:
        return plain
    g = validate_id("group", group)
    return (f"$share/{g}/{plain[0]}", f"$share/{g}/{plain[1]}")


def query_subscription(region: str, group: str | None) -> str:
    """The direct kiosks' query subscription: ``$share/<group>/ft/v1/<region>/q/+``."""
    return query_subscriptions(region, group)[0]


def query_route(region: str, topic: str) -> tuple[str, str | None]:
    """(terminal, site) of a query topic of ``region``: site None for a kiosk connected
    directly; :class:`EnvelopeError` for anything else."""
    head = f"{PREFIX}/{validate_id('region', region)}/"
    if not isinstance(topic, str) or not topic.startswith(head):
        raise EnvelopeError("topic: not a query topic of this region")
    parts = topic[len(head) :].split("/")
    if len(parts) == 2 and parts[0] == "q":
        site, terminal = None, parts[1]
    elif len(parts) == 4 and parts[0] == "site" and parts[2] == "q":
        site, terminal = parts[1], parts[3]
        if not _ID.fullmatch(site):
            raise EnvelopeError("topic: bad site id in query topic")
    else:
        raise EnvelopeError("topic: not a query topic of this region")
    if not _ID.fullmatch(terminal):
        raise EnvelopeError("topic: bad terminal id in query topic")
    return terminal, site


def reply_topic(region: str, terminal: str, site: str | None) -> str:
    """Where the answer to a query that came by ``site`` (None: directly) goes."""
    if site is None:
        return response_topic(region, terminal)
    return site_topic(region, site, "r", terminal)


# -- the offline list (docs/offline-list.md): everything under ft/v1/<region>/list/, which
# terminals may only read. Manifests and chunks are retained, so a kiosk fetches a chunk on
# demand by subscribing to its topic, and resumes by subscribing only to those it lacks.
LIST_KINDS = ("full", "delta")


def _list_kind(kind: str) -> str:
    if kind not in LIST_KINDS:
        raise ValueError(f"list kind must be one of {LIST_KINDS}, not {kind!r}")
    return kind


def list_manifest_topic(region: str, kind: str) -> str:
    """``ft/v1/<region>/list/manifest/<kind>``: the signed manifest of the current full
    list or delta (retained)."""
    return f"{PREFIX}/{validate_id('region', region)}/list/manifest/{_list_kind(kind)}"


def list_chunk_topic(region: str, kind: str, version: int, index: int) -> str:
    """``ft/v1/<region>/list/<kind>/<version>/<index>``: one chunk of a list (retained)."""
    if version < 1 or index < 0:
        raise ValueError("list version must be >= 1 and chunk index >= 0")
    return f"{PREFIX}/{validate_id('region', region)}/list/{_list_kind(kind)}/{version}/{index}"


def list_chunk_filter(region: str, kind: str, version: int) -> str:
    """``ft/v1/<region>/list/<kind>/<version>/+``: every chunk of one list."""
    return f"{PREFIX}/{validate_id('region', region)}/list/{_list_kind(kind)}/{version}/+"


def parse_list_chunk_topic(region: str, topic: str) -> tuple[str, int, int]:
    """``(kind, version, index)`` of a chunk topic of ``region``; :class:`EnvelopeError`."""
    head = f"{PREFIX}/{validate_id('region', region)}/list/"
    parts = (
        topic[len(head) :].split("/") if isinstance(topic, str) and topic.startswith(head) else []
    )
    if len(parts) != 3 or parts[0] not in LIST_KINDS:
        raise EnvelopeError("topic: not a list chunk topic of this region")
    kind, version, index = parts
    if not (version.isdigit() and index.isdigit()) or int(version) < 1:
        raise EnvelopeError("topic: bad version or chunk index in list chunk topic")
    if str(int(version)) != version or str(int(index)) != index:
        raise EnvelopeError("topic: list chunk numbers must not have leading zeros")
    return kind, int(version), int(index)


# -- the supervisor's annunciator (docs/annunciator.md): each kiosk of a site publishes a
# sealed lane frame every 2 s on lane/<site>/<terminal>; each panel publishes its sealed
# ack frame every 2 s on lane-ack/<site>/<panel>, read by the site's kiosks.
def lane_topic(region: str, site: str, terminal: str) -> str:
    """``ft/v1/<region>/lane/<site>/<terminal>``: a kiosk's lane frames."""
    return (
        f"{PREFIX}/{validate_id('region', region)}/lane/{validate_id('site', site)}/"
        f"{validate_id('terminal', terminal)}"
    )


def lane_ack_topic(region: str, site: str, panel: str) -> str:
    """``ft/v1/<region>/lane-ack/<site>/<panel>``: a panel's acknowledgement frames."""
    return (
        f"{PREFIX}/{validate_id('region', region)}/lane-ack/{validate_id('site', site)}/"
        f"{validate_id('panel', panel)}"
    )


def lane_ack_filter(region: str, site: str) -> str:
    """``ft/v1/<region>/lane-ack/<site>/+``: every panel's acks at a site."""
    return f"{PREFIX}/{validate_id('region', region)}/lane-ack/{validate_id('site', site)}/+"
