"""The agent's hook for the lane publisher: the state machine's state becomes the lane
state, and a panel's acknowledgement becomes an agent event (``supervisor``).

A latched possible match (online or from the offline list) is a CALL; everything else
is IDLE. The officer acknowledging the match on the kiosk releases the latch, so the
panel stops calling too.
"""

from __future__ import annotations

import logging
from typing import Any

from firmware.agent.states import LATCHED

from . import frames
from .keyring import KeyFile
from .publisher import LanePublisher

log = logging.getLogger(__name__)


def lane_state(machine: Any) -> int:
    return frames.CALL if machine.state in LATCHED else frames.IDLE


def _current_seq(machine: Any) -> Any:
    cur = machine.current
    return None if cur is None else cur.seq


def open_lane(cfg: Any, client: Any, core: Any) -> LanePublisher | None:
    """The publisher over the query client's MQTT link, or None (no ``[lane]`` section,
    no key file, or a client without a shared link)."""
    lane = getattr(cfg, "lane", None)
    link = getattr(client, "link", None)
    if lane is None or link is None or core is None:
        return None
    try:
        keys = KeyFile(lane.key)
    except (OSError, ValueError) as exc:
        log.warning("no lane frames for the annunciator: %s", exc)
        return None
    return LanePublisher(
        link,
        region=cfg.region,
        site=lane.site,
        terminal=cfg.terminal_id,
        keys=keys.current,
        state=lambda: lane_state(core.machine),
        call_key=lambda: _current_seq(core.machine),
        interval=lane.interval,
        on_ack=lambda panel: core.post("supervisor", panel),
    )
