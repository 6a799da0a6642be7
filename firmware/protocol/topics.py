"""MQTT topic names: the only place where fieldterm topic strings are built or parsed.

Tree (see docs/architecture.md): ``ft/v1/<region>/{q,r,status}/<terminal>``,
``ft/v1/<region>/alert`` and ``ft/v1/<region>/list/...`` (the signed offline list).
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


def query_subscription(region: str, group: str | None) -> str:
    """The regional subscription: ``$share/<group>/ft/v1/<region>/q/+`` or plain without group."""
    plain = per_terminal_filter(region, "q")
    if group is None:
        return plain
    return f"$share/{validate_id('group', group)}/{plain}"


def terminal_from_query_topic(region: str, topic: str) -> str:
    """The terminal id of a query topic of ``region``; :class:`EnvelopeError` otherwise."""
    head = f"{PREFIX}/{validate_id('region', region)}/q/"
    if not isinstance(topic, str) or not topic.startswith(head):
        raise EnvelopeError("topic: not a query topic of this region")
    terminal = topic[len(head) :]
    if not _ID.fullmatch(terminal):
        raise EnvelopeError("topic: bad terminal id in query topic")
    return terminal
