"""Render and write what the broker and the regional service run from.

Pure renderers (``acl_text``, ``mosquitto_conf``, ``regional_toml``, ``terminals_json``)
and the writers that put them, atomically, into a broker directory. Files Mosquitto reads
are group ``mosquitto`` (0640) when that group exists: started as root, Mosquitto drops to
the user ``mosquitto`` *before* it opens its key, log and persistence files.
"""

from __future__ import annotations

import datetime as dt
import grp
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from firmware.errors import SetupError
from firmware.protocol import telemetry, topics

from .atomic import write_file
from .bundle import broker_table
from .registry import IdentityKey, iso

BROKER_GROUP = "mosquitto"
ACL_FILE = "mosquitto.acl"
#: The dynamic-security plugin's state on the regional broker (see :func:`dynsec_state`).
DYNSEC_FILE = "dynamic-security.json"
#: Where Debian's mosquitto package installs the dynamic-security plugin.
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
#: The dynamic-security control topic (its answers come on ``.../response``).
DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
#: The provisioning tool's broker identity: the only one allowed on :data:`DYNSEC_TOPIC`
#: (add-terminal refuses reserved names).
BROKER_ADMIN_CN = "broker-admin"
#: The regional services' shared subscription group (regional.toml ``share_group``).
SHARE_GROUP = "regional"
#: Largest MQTT packet the broker accepts (bytes); bigger ones cost the sender its
#: connection. The largest legitimate one is an offline-list chunk (64 KiB + envelope).
MAX_PACKET_SIZE = 262144
#: Per-client queue bounds: a kiosk that stays away costs the broker this much at most.
MAX_QUEUED_MESSAGES = 10000
MAX_QUEUED_BYTES = 16 * 1024 * 1024
#: Connections one terminals' listener accepts (``max_connections``; ``--max-connections``).
#: Each takes a file descriptor: keep it below the broker's fd limit (:data:`BROKER_NOFILE`)
#: with room for the listeners, the log, persistence and the bridge.
MAX_CONNECTIONS = 60000
#: ``LimitNOFILE`` of the systemd unit written beside mosquitto.conf (:data:`UNIT_FILE`).
BROKER_NOFILE = 65536
#: File descriptors the broker needs besides its clients' connections.
FD_MARGIN = 100
#: Clients of the regional broker's loopback service listener (the regional processes,
#: the provisioning tool's admin connection): a small fixed bound.
SERVICE_MAX_CONNECTIONS = 256
#: A bridge's reconnect delay: "decorrelated jitter" from BASE up to CAP seconds, so that
#: the site bridges of a region do not all come back in the same second after the regional
#: broker restarts (Mosquitto's default is 5 30).
BRIDGE_RESTART = (2, 15)
UNIT_FILE = "fieldterm-broker.service"
CRL_FILE = "crl.pem"
TERMINALS_FILE = "terminals.json"
REGIONAL_CN = "regional"
#: The alert desk's certificate CN (the dash keeps it a valid id no terminal may take:
#: add-terminal refuses reserved names).
ALERT_DESK_CN = "alert-desk"
ALERT_DESK_PUB = "alert-desk.pub"
#: The operator's console's certificate CN (``provision console-cert``): its own MQTT
#: identity beside the desk's. On the terminals' listener the CN is the client id
#: (``use_username_as_clientid``), so a console sharing the desk's certificate and the
#: desk would take each other's session over. Reserved like the desk's.
CONSOLE_CN = "alert-console"
#: Seconds between the regional's alert batches; the desk alarms after 3 missed.
REGIONAL_ALERT_INTERVAL = 2.0
#: The offline-list key beside regional.toml and in every bundle (docs/offline-list.md).
OFFLINE_LIST_KEY_FILE = "offline-list.key"
#: regional.toml's ``[offline]`` as provisioned (host_tools/offline/config.py reads it).
REGIONAL_OFFLINE: Mapping[str, Any] = {
    "list_key": OFFLINE_LIST_KEY_FILE,
    "fingerprint_bits": 8,
    "chunk_size": 65536,
    "publish_interval": 900,
    "refresh_after": 900,
    "rebuild_after": 86400,
    "max_delta_fraction": 0.05,
    "max_delta_changes": 1_000_000,
}


def bridge_cn(site: str) -> str:
    """The bridge's certificate CN. The dot keeps it out of the terminal id space."""
    return f"bridge.{site}"


@dataclass(frozen=True)
class SiteBridge:
    """A site broker bridged to the regional broker."""

    site: str
    upstream_host: str
    upstream_port: int
    terminals: tuple[str, ...]


def _terminal_lines(region: str, tid: str) -> list[str]:
    return [
        f"user {tid}",
        f"topic write {topics.query_topic(region, tid)}",
        f"topic write {topics.status_topic(region, tid)}",
        f"topic write {telemetry.topic(region, tid)}",
        f"topic read {topics.response_topic(region, tid)}",
        f"topic read {topics.list_filter(region)}",
        "",
    ]


def acl_text(
    region: str,
    terminals: Iterable[str],
    bridges: Sequence[SiteBridge] = (),
    *,
    regional: bool = True,
) -> str:
    """The Mosquitto ACL: each active terminal writes only its query and status topics and
    reads only its responses (plus the signed offline list); the regional user reads all
    queries and status, writes responses, alerts and the list. A terminal not listed
    (revoked, unknown) may do nothing at all."""
    out = [
        f"# fieldterm region {region}: generated by 'fieldterm provision' from the registry.",
        "# Do not edit: revoke/rotate/add-terminal rewrite it. Reload mosquitto (SIGHUP) after.",
        "",
    ]
    if regional:
        out += [
            f"user {REGIONAL_CN}",
            f"topic read {topics.per_terminal_filter(region, 'q')}",
            f"topic read {topics.site_filter(region, 'q')}",
            f"topic read {topics.per_terminal_filter(region, 'status')}",
            f"topic write {topics.per_terminal_filter(region, 'r')}",
            f"topic write {topics.site_filter(region, 'r')}",
            f"topic write {topics.alert_topic(region)}",
            f"topic write {topics.list_filter(region)}",
            f"topic readwrite {topics.status_topic(region, REGIONAL_CN)}",
            "",
            f"user {ALERT_DESK_CN}",
            f"topic read {topics.alert_topic(region)}",
            "",
            # the operator's console: the alerts, and the fleet page's status and telemetry
            f"user {CONSOLE_CN}",
            f"topic read {topics.alert_topic(region)}",
            f"topic read {topics.per_terminal_filter(region, 'status')}",
            f"topic read {telemetry.topic_filter(region)}",
            "",
        ]
    for b in bridges:
        out.append(f"user {bridge_cn(b.site)}")
        for tid in b.terminals:
            out += [
                f"topic write {topics.site_topic(region, b.site, 'q', tid)}",
                f"topic write {topics.status_topic(region, tid)}",
                f"topic write {telemetry.topic(region, tid)}",
            ]
        out += [
            f"topic read {topics.site_filter(region, 'r', b.site)}",  # its site's answers only
            f"topic read {topics.list_filter(region)}",
            "",
        ]
    for tid in terminals:
        out += _terminal_lines(region, tid)
    return "\n".join(out)


# -- dynamic security (regional broker) ----------------------------------------------------
def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _sub(topic: str) -> list[dict[str, Any]]:
    """May subscribe to exactly ``topic`` (checked at SUBSCRIBE) and receive what matches."""
    return [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]


def _pub(topic: str) -> list[dict[str, Any]]:
    return [_acl("publishClientSend", topic)]


def terminal_role(tid: str) -> str:
    return f"terminal.{tid}"


def _sub_tree(pattern: str) -> list[dict[str, Any]]:
    """May subscribe to any filter within ``pattern`` (a ``$share/...`` filter never is)."""
    return [_acl("subscribePattern", pattern), _acl("publishClientReceive", pattern)]


def terminal_acls(region: str, tid: str) -> list[dict[str, Any]]:
    """A terminal's rights: publish its query and status, subscribe to its responses and
    within the offline list. No wildcard of anyone else's, no shared group."""
    return [
        *_pub(topics.query_topic(region, tid)),
        *_pub(topics.status_topic(region, tid)),
        *_pub(telemetry.topic(region, tid)),  # its health, sealed to the desk
        *_sub(topics.response_topic(region, tid)),
        *_sub_tree(topics.list_filter(region)),
    ]


def desk_acls(region: str) -> list[dict[str, Any]]:
    """The alert desk (``fieldterm alerts``): the alert batches, nothing else."""
    return _sub(topics.alert_topic(region))


def console_acls(region: str) -> list[dict[str, Any]]:
    """The operator's console (``fieldterm console``, its own identity :data:`CONSOLE_CN`):
    the alert batches, and every kiosk's status and sealed telemetry for the fleet page.
    It publishes nothing."""
    return [
        *_sub(topics.alert_topic(region)),
        *_sub_tree(topics.per_terminal_filter(region, "status")),
        *_sub_tree(telemetry.topic_filter(region)),
    ]


def regional_acls(region: str, group: str = SHARE_GROUP) -> list[dict[str, Any]]:
    """The regional service: queries only through its shared group (the SUBSCRIBE check
    sees the whole ``$share/<group>/...`` filter), status, and what it publishes."""
    direct, bridged = topics.query_subscriptions(region, group)
    return [
        _acl("subscribeLiteral", direct),
        _acl("subscribeLiteral", bridged),
        _acl("publishClientReceive", topics.per_terminal_filter(region, "q")),
        _acl("publishClientReceive", topics.site_filter(region, "q")),
        *_sub_tree(topics.per_terminal_filter(region, "status")),  # all, or one kiosk's
        *_sub(topics.status_topic(region, REGIONAL_CN)),
        *_pub(topics.status_topic(region, REGIONAL_CN)),
        *_pub(topics.per_terminal_filter(region, "r")),
        *_pub(topics.site_filter(region, "r")),
        *_pub(topics.alert_topic(region)),
        *_pub(topics.list_filter(region)),
        *_sub_tree(topics.list_filter(region)),
    ]


def bridge_acls(region: str, bridge: SiteBridge) -> list[dict[str, Any]]:
    """A site bridge: its terminals' queries (on its site's route), status and sealed
    telemetry out, by name; the answers on its site's route and the list in. Only the
    regional publishes on ``site/<site>/r/...``, and it answers there only queries that
    came by that site, so the broker hands each answer to one bridge, with one receive
    check (before: every bridge subscribed to every kiosk's answers, and each answer was
    checked against every bridge's per-terminal list). Lane frames stay on the site broker,
    where the site's panels connect."""
    out = _sub(topics.site_filter(region, "r", bridge.site))
    for tid in bridge.terminals:
        out += _pub(topics.site_topic(region, bridge.site, "q", tid))
        out += _pub(topics.status_topic(region, tid)) + _pub(telemetry.topic(region, tid))
    return out + _sub_tree(topics.list_filter(region))


def admin_acls() -> list[dict[str, Any]]:
    """The provisioning tool: the control topic and its answers, nothing of the region."""
    return _pub(DYNSEC_TOPIC) + _sub(f"{DYNSEC_TOPIC}/response")


def dynsec_clients(
    region: str,
    terminals: Iterable[str],
    bridges: Sequence[SiteBridge] = (),
    extra: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every client of the regional broker (certificate CN) -> (its role, the role's ACLs).
    ``extra``: more ACLs by CN, added to a client's role or making a new client (the
    annunciator's lane grants, :func:`lane_dynsec`)."""
    out = {
        BROKER_ADMIN_CN: (BROKER_ADMIN_CN, admin_acls()),
        REGIONAL_CN: (REGIONAL_CN, regional_acls(region)),
        ALERT_DESK_CN: (ALERT_DESK_CN, desk_acls(region)),
        CONSOLE_CN: (CONSOLE_CN, console_acls(region)),
    }
    for b in bridges:
        out[bridge_cn(b.site)] = (bridge_cn(b.site), bridge_acls(region, b))
    for tid in terminals:
        out[tid] = (terminal_role(tid), terminal_acls(region, tid))
    for cn, acls in (extra or {}).items():
        role, have = out.get(cn, (cn, []))
        out[cn] = (role, [*have, *acls])
    return out


def dynsec_state(
    region: str,
    terminals: Iterable[str],
    bridges: Sequence[SiteBridge] = (),
    extra: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The dynamic-security plugin's file for the regional broker.

    Clients are certificate CNs (``use_identity_as_username``) without a password, so none
    can log in by password. Everything not granted is refused, SUBSCRIBE included:
    Mosquitto's plain ``acl_file`` grants every SUBSCRIBE and filters only deliveries,
    which let any certificate join the regional's shared group and drop its share of the
    queries. A terminal not listed (revoked, unknown) may do nothing at all."""
    clients = dynsec_clients(region, terminals, bridges, extra)
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [
            {"username": cn, "roles": [{"rolename": role}]} for cn, (role, _) in clients.items()
        ],
        "groups": [],
        "roles": [{"rolename": role, "acls": acls} for role, acls in clients.values()],
    }


def grant_all(state_file: Path, rolename: str, acls: list[dict[str, Any]]) -> None:
    """Add role ``rolename`` with ``acls`` to every client of a rendered dynamic-security
    file, before the broker starts (the benchmarks' echo topics; never the product's)."""
    state = json.loads(state_file.read_text())
    state["roles"].append({"rolename": rolename, "acls": acls})
    for c in state["clients"]:
        c["roles"].append({"rolename": rolename})
    state_file.write_text(json.dumps(state, indent=2) + "\n")


def extra_acls(
    publish: Sequence[str] = (), subscribe: Sequence[str] = (), patterns: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """ACL entries for :func:`grant_all`: publish to and receive from each of ``publish``
    and ``patterns``, subscribe to exactly ``subscribe`` or within ``patterns``."""
    out = [_acl("publishClientSend", t) for t in (*publish, *patterns)]
    out += [_acl("subscribeLiteral", t) for t in subscribe]
    out += [_acl("subscribePattern", t) for t in patterns]
    return out + [_acl("publishClientReceive", t) for t in (*publish, *patterns)]


def dynsec_json(
    region: str,
    terminals: Iterable[str],
    bridges: Sequence[SiteBridge] = (),
    extra: Mapping[str, list[dict[str, Any]]] | None = None,
) -> str:
    # compact: Python's indenting encoder is ~10x slower, seconds for 10,000 terminals
    return json.dumps(dynsec_state(region, terminals, bridges, extra)) + "\n"


@dataclass(frozen=True)
class ListenerSpec:
    directory: Path
    port: int
    bind: str | None
    user: str
    #: The regional broker's loopback listener for the regional service (several
    #: processes share its identity, so their client ids cannot be bound to it).
    service_port: int | None = None
    #: ``max_connections`` of the terminals' listener (see :data:`MAX_CONNECTIONS`).
    max_connections: int = MAX_CONNECTIONS


def dynsec_plugin() -> Path:
    """The dynamic-security plugin Debian's mosquitto package ships (any architecture)."""
    found = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))
    for cand in (DYNSEC_PLUGIN, *found, Path("/usr/lib/mosquitto_dynamic_security.so")):
        if cand.exists():
            return cand
    raise SetupError(
        "mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not "
        "installed: the regional broker needs it to check subscriptions (apt-get install "
        "mosquitto, 2.0 or later)"
    )


def _tls_lines(d: Path) -> list[str]:
    return [
        f"cafile {d / 'ca.crt'}",
        f"certfile {d / 'broker.crt'}",
        f"keyfile {d / 'broker.key'}",
        f"crlfile {d / CRL_FILE}",
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.2",
    ]


def mosquitto_conf(spec: ListenerSpec, bridge: SiteBridge | None = None, region: str = "") -> str:
    """mosquitto.conf with absolute paths, runnable as ``mosquitto -c DIR/mosquitto.conf``.

    The regional broker (no ``bridge``) checks every PUBLISH and SUBSCRIBE with the
    dynamic-security plugin (:func:`dynsec_state`); a site broker, which has no shared
    subscription to divert, keeps the ACL file. On the terminals' listener a client's id
    is its certificate CN (``use_username_as_clientid``), so one kiosk cannot take over
    another's session; the regional service's processes share one identity and connect
    on the loopback service listener instead."""
    d = spec.directory.resolve()
    listener = f"listener {spec.port} {spec.bind}" if spec.bind else f"listener {spec.port}"
    if bridge is None:
        security = [
            f"plugin {dynsec_plugin()}",
            f"plugin_opt_config_file {d / DYNSEC_FILE}",
        ]
    else:
        security = [f"acl_file {d / ACL_FILE}"]
    lines = [
        "# fieldterm broker: generated by 'fieldterm provision broker-config'.",
        "# Run: mosquitto -c " + str(d / "mosquitto.conf"),
        "# Reload after revoke/rotate/add-terminal: kill -HUP <pid> (or systemctl reload).",
        f"user {spec.user}",
        "per_listener_settings false",
        "allow_anonymous false",
        *security,
        "persistence true",
        f"persistence_location {d / 'data'}/",
        "autosave_interval 60",
        f"log_dest file {d / 'data' / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        # Small messages go out at once: with Nagle a sealed answer can wait behind the
        # broker's PUBACK for an ACK a full round trip away (seen at 500 ms delay, issue 14).
        "set_tcp_nodelay true",
        f"max_packet_size {MAX_PACKET_SIZE}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        "",
        listener,
        "protocol mqtt",
        # each connection is a file descriptor: the unit's LimitNOFILE leaves room for it
        f"max_connections {spec.max_connections}",
        *_tls_lines(d),
        "use_username_as_clientid true",
    ]
    if bridge is None and spec.service_port is not None:
        lines += [
            "",
            f"listener {spec.service_port} 127.0.0.1",
            "protocol mqtt",
            f"max_connections {SERVICE_MAX_CONNECTIONS}",
            *_tls_lines(d),
        ]
    if bridge is not None:
        lines += [
            "",
            f"connection {bridge_cn(bridge.site)}",
            f"address {bridge.upstream_host}:{bridge.upstream_port}",
            "bridge_protocol_version mqttv50",
            f"remote_clientid {bridge_cn(bridge.site)}",
            "cleansession false",
            "notifications false",
            "try_private true",
            f"bridge_cafile {d / 'ca.crt'}",
            f"bridge_certfile {d / 'bridge.crt'}",
            f"bridge_keyfile {d / 'bridge.key'}",
            "bridge_insecure false",
            f"restart_timeout {BRIDGE_RESTART[0]} {BRIDGE_RESTART[1]}",
        ]
        # Wildcards here, names in the ACLs: the site ACL lets only the site's terminals
        # write their own q/status topics, and the regional ACL lets this bridge write only
        # their queries. A new terminal at the site then needs only ACL reloads (Mosquitto
        # does not reload bridge settings on SIGHUP). Queries and answers travel upstream
        # on the site's own route (local q/<tid> is remote site/<site>/q/<tid>, and back
        # for r), so each answer reaches only this bridge.
        site = bridge.site
        lines += [
            f"topic + out 1 {topics.per_terminal_prefix(region, 'q')}"
            f" {topics.per_terminal_prefix(region, 'q', site)}",
            f"topic {topics.per_terminal_filter(region, 'status')} out 1",
            f"topic {telemetry.topic_filter(region)} out 1",
            f"topic + in 1 {topics.per_terminal_prefix(region, 'r')}"
            f" {topics.per_terminal_prefix(region, 'r', site)}",
        ]
        lines.append(f"topic {topics.list_filter(region)} in 1")
    return "\n".join(lines) + "\n"


def systemd_unit(directory: Path) -> str:
    """``fieldterm-broker.service``: Mosquitto from this directory under systemd, with a
    file-descriptor limit for a fleet (Debian's mosquitto.service keeps systemd's default
    soft limit, 1024, which a region's kiosks exceed)."""
    d = directory.resolve()
    return "\n".join(
        [
            "# fieldterm broker: generated by 'fieldterm provision broker-config'.",
            f"# Install: cp {d / UNIT_FILE} /etc/systemd/system/ && systemctl daemon-reload",
            f"#          && systemctl enable --now {UNIT_FILE}",
            "[Unit]",
            "Description=fieldterm MQTT broker (Mosquitto)",
            "Documentation=man:mosquitto.conf(5)",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            "NotifyAccess=main",
            f"ExecStart=/usr/sbin/mosquitto -c {d / 'mosquitto.conf'}",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartSec=2",
            f"# one descriptor per connection: max_connections + {FD_MARGIN} at least",
            f"LimitNOFILE={BROKER_NOFILE}",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def fd_limit_note(max_connections: int) -> str | None:
    """A note when this shell's ``ulimit -n`` cannot hold ``max_connections`` (a broker
    started from it, not from the unit, would run out of descriptors first)."""
    import resource  # noqa: PLC0415 -- POSIX only, like the rest of the broker's set-up

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= max_connections + FD_MARGIN:
        return None
    return (
        f"note: ulimit -n here is {soft}: a mosquitto started from this shell accepts about "
        f"{max(soft - FD_MARGIN, 0)} connections, not max_connections {max_connections}; "
        f"{UNIT_FILE} sets LimitNOFILE={BROKER_NOFILE} (or run 'ulimit -n "
        f"{max_connections + FD_MARGIN}' first)"
    )


def regional_toml(region: str, host: str, port: int) -> str:
    doc: Mapping[str, Any] = {
        "regional": {
            "region": region,
            "kem_key": "regional-kem.key",
            "sign_key": "regional-sign.key",
            "terminals": TERMINALS_FILE,
            "sltd_db": "sltd.sqlite",
            "index_key": "index.key",
            "audit_db": "regional-audit.sqlite",
            "share_group": SHARE_GROUP,
            "health_file": "regional-health.json",
            "replay_window": 120,
            "alert_key": ALERT_DESK_PUB,
            "alert_interval": REGIONAL_ALERT_INTERVAL,
        },
        "broker": broker_table(host, port, "regional.crt", "regional.key"),
        "offline": dict(REGIONAL_OFFLINE),
    }
    head = (
        f"# fieldterm regional service, region {region}: written by 'fieldterm provision "
        "broker-config'.\n# Relative paths resolve against this file's directory.\n\n"
    )
    return head + tomli_w.dumps(doc)


def desk_toml(region: str, host: str, port: int) -> str:
    """``desk.toml`` for ``fieldterm alerts`` (paths relative to the file)."""
    doc: Mapping[str, Any] = {
        "desk": {
            "region": region,
            "alert_key": "alert-desk.key",
            "sign_public": "regional-sign.pub",
            "alert_interval": REGIONAL_ALERT_INTERVAL,
        },
        "broker": broker_table(host, port, "desk.crt", "desk.key"),
    }
    head = (
        f"# fieldterm alert desk, region {region}: written by 'fieldterm provision alert-desk'.\n"
        "# Relative paths resolve against this file's directory. Run: fieldterm alerts --config "
        "desk.toml\n\n"
    )
    return head + tomli_w.dumps(doc)


def terminals_json(
    region: str,
    terminals: Iterable[tuple[str, bool, Sequence[IdentityKey]]],
    now: dt.datetime,
) -> str:
    """The regional's view: every terminal, its revoked flag and its live identity keys."""
    out: dict[str, Any] = {}
    for tid, revoked, keys in terminals:
        live = [k for k in keys if k.not_after is None or k.not_after > now]
        out[tid] = {
            "revoked": revoked,
            "keys": [
                {"ed25519": k.public_b64, "not_after": iso(k.not_after) if k.not_after else None}
                for k in live
            ],
        }
    return json.dumps({"version": 1, "region": region, "terminals": out}, indent=2) + "\n"


def broker_group() -> int | None:
    """The gid Mosquitto drops to, when we can hand files to it (root only)."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return None


def write_broker_file(path: Path, data: bytes | str, *, secret: bool) -> None:
    """A file Mosquitto reads: 0640 root:mosquitto when possible, else 0600/0644."""
    gid = broker_group()
    if gid is None:
        write_file(path, data, 0o600 if secret else 0o644)
        return
    write_file(path, data, 0o640)
    os.chown(path, -1, gid)


def prepare_data_dir(directory: Path, user: str) -> None:
    """The persistence/log directory, owned by the user Mosquitto runs as."""
    data = directory / "data"
    data.mkdir(mode=0o750, exist_ok=True)
    if os.geteuid() == 0:
        import pwd  # noqa: PLC0415 -- only meaningful (and only present) on POSIX as root

        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return
        os.chown(data, pw.pw_uid, pw.pw_gid)


def unreachable_parent(directory: Path, user: str = BROKER_GROUP) -> Path | None:
    """The outermost existing directory on the way to ``directory`` (itself included) that
    ``user`` cannot traverse, if any; see :func:`unreachable_dirs`."""
    blocked = unreachable_dirs(directory, user)
    return blocked[0] if blocked else None


def unreachable_dirs(directory: Path, user: str = BROKER_GROUP) -> list[Path]:
    """Every existing directory on the way to ``directory`` (itself included), outermost
    first, that ``user`` cannot traverse: no x bit for it as owner, group member or other.

    A user unknown here is judged as "other". Directories that do not exist yet are
    skipped: they are checked again once created."""
    uid, gids = _identity(user)
    if uid == 0:
        return []
    path = directory.absolute()
    blocked = []
    for p in [*reversed(path.parents), path]:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in gids:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            blocked.append(p)
    return blocked


def _identity(user: str) -> tuple[int | None, frozenset[int]]:
    import pwd  # noqa: PLC0415 -- POSIX only, like the rest of the broker's set-up

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None, frozenset()
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    return pw.pw_uid, frozenset(groups)


def traversal_fix(directory: Path, user: str) -> str:
    """What to tell a technician whose broker directory ``user`` cannot reach."""
    blocked = unreachable_dirs(directory, user)
    first = blocked[0]
    alternative = Path("/srv/fieldterm") / directory.name
    lines = [
        f"user {user} cannot traverse {first} (mode {first.stat().st_mode & 0o7777:04o}): "
        f"Mosquitto started as root drops to {user} before it reads "
        f"{directory / 'mosquitto.conf'} and would not start.",
        "Fix it one of two ways:",
    ]
    if not unreachable_dirs(alternative, user) and not alternative.is_relative_to(first):
        lines.append(f"  --out {alternative}   (a directory {user} can reach)")
    lines.append(
        f"  chmod o+x {' '.join(str(p) for p in blocked)}   (lets others pass through, not list)"
    )
    return "\n".join(lines)


# -- the supervisor's annunciator (docs/annunciator.md) ---------------------------------
# Kept apart so it can move to another authorisation scheme (e.g. dynamic security) as
# one piece. Each kiosk with a site writes its own lane topic and reads its site's acks;
# each panel reads only its lanes' topics and writes only its own ack topic.
@dataclass(frozen=True)
class LaneAcl:
    """A panel's grants: its id (CN ``annunciator.<id>``), site and lanes."""

    panel_cn: str
    panel: str
    site: str
    lanes: tuple[str, ...]


def lane_acl_lines(
    region: str, site_kiosks: Iterable[tuple[str, str]], panels: Iterable[LaneAcl]
) -> list[str]:
    """ACL lines for lane frames and acks. ``site_kiosks``: (terminal id, site) of every
    active kiosk that has a site. Mosquitto adds a repeated ``user`` block's topics to
    that user's earlier ones."""
    out = ["# -- lane frames and acknowledgements (the supervisor's annunciator)", ""]
    for tid, site in site_kiosks:
        out += [
            f"user {tid}",
            f"topic write {topics.lane_topic(region, site, tid)}",
            f"topic read {topics.lane_ack_filter(region, site)}",
            "",
        ]
    for p in panels:
        out.append(f"user {p.panel_cn}")
        out += [f"topic read {topics.lane_topic(region, p.site, tid)}" for tid in p.lanes]
        out += [f"topic write {topics.lane_ack_topic(region, p.site, p.panel)}", ""]
    return out


def lane_dynsec(
    region: str, site_kiosks: Iterable[tuple[str, str]], panels: Iterable[LaneAcl]
) -> dict[str, list[dict[str, Any]]]:
    """The same grants as :func:`lane_acl_lines`, for the regional broker's dynamic
    security: by CN, to add to :func:`dynsec_json` (``extra``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for tid, site in site_kiosks:
        out.setdefault(tid, []).extend(
            _pub(topics.lane_topic(region, site, tid)) + _sub(topics.lane_ack_filter(region, site))
        )
    for p in panels:
        acls = [a for tid in p.lanes for a in _sub(topics.lane_topic(region, p.site, tid))]
        out.setdefault(p.panel_cn, []).extend(
            acls + _pub(topics.lane_ack_topic(region, p.site, p.panel))
        )
    return out
