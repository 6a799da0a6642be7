"""Apply the registry to a running regional broker through its dynamic-security plugin.

The plugin reads its file (``dynamic-security.json``, rendered by
:func:`.broker_config.dynsec_state`) only when Mosquitto starts, and a SIGHUP does not
re-read it. A change to a running broker goes through the plugin's control topic instead:
``deleteClient`` removes a revoked terminal's rights *and disconnects its open session*
at once; ``createRole``/``createClient`` admit a new one. The provisioning tool sends
them with its own identity (CN ``broker-admin``, the only one the plugin lets use the
control topic), on the broker's loopback service listener, right after it has rewritten
the broker directory. Every command is idempotent: an "already exists" or "not found"
answer means the broker already agrees.
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from . import broker_config as bc

#: Answers that mean the broker was already in the wanted state.
_HARMLESS = ("already exists", "not found", "already has")


@dataclass(frozen=True)
class Admin:
    """Where and as whom to reach one broker's control topic."""

    host: str
    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    passphrase: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What the broker answered: ``reached`` False when it could not be reached (then the
    rendered file takes effect at its next start); ``errors`` are real refusals."""

    reached: bool
    errors: tuple[str, ...] = ()
    why: str = ""


def sync_commands(
    clients: Mapping[str, tuple[str, list[dict[str, Any]]]],
    revoked: Iterable[str],
    bridge_roles: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The commands that bring a running broker to ``clients`` (as
    :func:`.broker_config.dynsec_clients` gives them): revoked terminals deleted (their
    sessions closed), missing roles and clients created, bridge roles (whose topics follow
    their site's terminals) given their ACLs."""
    cmds: list[dict[str, Any]] = []
    for tid in revoked:
        if tid in clients:
            continue
        cmds.append({"command": "deleteClient", "username": tid})
        cmds.append({"command": "deleteRole", "rolename": bc.terminal_role(tid)})
    for cn, (role, acls) in clients.items():
        cmds.append({"command": "createRole", "rolename": role, "acls": acls})
        cmds.append({"command": "createClient", "username": cn, "roles": [{"rolename": role}]})
        if role in bridge_roles:
            cmds += [{"command": "addRoleACL", "rolename": role, **acl} for acl in acls]
    return cmds


def _context(admin: Admin) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(admin.cafile))
    ctx.load_cert_chain(str(admin.certfile), str(admin.keyfile), admin.passphrase)
    return ctx


#: Largest control message sent (bytes): under the broker's ``max_packet_size``
#: (:data:`.broker_config.MAX_PACKET_SIZE`), which would otherwise close the connection.
MAX_MESSAGE = bc.MAX_PACKET_SIZE // 2


def chunk_commands(commands: list[dict[str, Any]], limit: int = MAX_MESSAGE) -> list[bytes]:
    """``commands`` as control messages of at most ``limit`` bytes each, in order (a
    region of 10,000 terminals is a few MB of commands)."""
    out: list[bytes] = []
    part: list[str] = []
    size = len('{"commands":[]}')
    for cmd in commands:
        text = json.dumps(cmd, separators=(",", ":"))
        if part and size + len(text) + 1 > limit:
            out.append(('{"commands":[' + ",".join(part) + "]}").encode())
            part, size = [], len('{"commands":[]}')
        part.append(text)
        size += len(text) + 1
    if part or not out:
        out.append(('{"commands":[' + ",".join(part) + "]}").encode())
    return out


def send(admin: Admin, commands: list[dict[str, Any]], timeout: float = 10.0) -> Outcome:
    """Send ``commands`` (in messages under the broker's packet limit, one after the
    other) and wait for the plugin's answer to each; ``timeout`` per message."""
    messages = chunk_commands(commands)
    done = threading.Event()
    answered = threading.Condition()
    state: dict[str, Any] = {"responses": [], "why": "", "sent": 0, "answers": 0}
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{bc.BROKER_ADMIN_CN}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    c.tls_set_context(_context(admin))

    def finish(why: str = "") -> None:
        with answered:
            state["why"] = why
            done.set()
            answered.notify_all()

    def next_message(client: Any) -> None:
        if state["sent"] == len(messages):
            finish()
            return
        client.publish(bc.DYNSEC_TOPIC, messages[state["sent"]], qos=1)
        state["sent"] += 1

    def on_connect(client: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            finish(f"the broker refused the admin connection: {rc}")
            return
        client.subscribe(f"{bc.DYNSEC_TOPIC}/response", qos=1)

    def on_subscribe(client: Any, _u: Any, _mid: Any, rcs: Any, _p: Any = None) -> None:
        if any(r.is_failure for r in rcs):
            finish(f"the broker refused the control topic: {rcs}")
            return
        next_message(client)

    def on_message(client: Any, _u: Any, msg: Any) -> None:
        state["responses"].extend(json.loads(msg.payload).get("responses", []))
        next_message(client)
        with answered:
            state["answers"] += 1
            answered.notify_all()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    try:
        c.connect(admin.host, admin.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        return Outcome(False, why=f"{admin.host}:{admin.port}: {exc}")
    c.loop_start()
    try:
        seen = [-1]  # answers counted at the last wake-up

        def progressed() -> bool:
            return bool(state["answers"] != seen[0] or done.is_set())

        while not done.is_set():  # each answer gives the next message its own timeout
            with answered:
                got = answered.wait_for(progressed, timeout)
                seen[0] = state["answers"]
            if not got:
                return Outcome(
                    False,
                    why=f"no answer from {admin.host}:{admin.port} in {timeout} s "
                    f"(message {state['sent']} of {len(messages)})",
                )
    finally:
        c.disconnect()
        c.loop_stop()
    if state["why"]:
        return Outcome(False, why=state["why"])
    errors = tuple(
        f"{r.get('command')}: {r['error']}"
        for r in state["responses"]
        if r.get("error") and not any(h in str(r["error"]).lower() for h in _HARMLESS)
    )
    return Outcome(True, errors)
