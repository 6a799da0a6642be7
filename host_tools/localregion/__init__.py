"""One local region for the demo, the benchmarks, the tests and the HIL.

A :class:`LocalRegion` builds a whole region on this machine with the product's own tools
and real parts, each step a context manager on one :class:`contextlib.ExitStack`, so
closing the region stops exactly what it started, in reverse order:

- provisioning (``fieldterm provision init / add-terminal / broker-config / alert-desk``),
  as a technician runs it;
- a synthetic SLTD list (``fieldterm sltd generate``) with samples of listed and unlisted
  documents;
- Mosquitto with mutual TLS from the generated ``mosquitto.conf``;
- one or more regional processes (``fieldterm regional``), the alert desk's reader
  (``fieldterm alerts``), and kiosk agents (``fieldterm agent``) each with a scanner
  simulator on a pty.

    with LocalRegion(workdir, terminals=("kiosk-001",), records=5000) as region:
        region.provision().generate_list()
        region.start_broker()
        regional = region.start_regional()      # returns once it is ready
        agent = region.start_agent("kiosk-001") # likewise
        agent.scanner.send(region.unlisted[0])

**One readiness rule.** A part is ready when the product itself says so, and only then:
the broker accepts a TCP connection on its port; a regional process's health file says
``"ready": true`` with that process's pid (written when the broker granted its query
subscription, the SUBACK; the same moment it sends ``READY=1`` to systemd); the alert desk
prints ``receiving alert batches``; an agent's events file has its ``ready`` event and a
``link`` up event (also on SUBACK). Every wait is bounded, polls that evidence, and fails
at once, with the tail of the part's log, if its process exits. Nothing sleeps a fixed
time hoping a part is ready.

Host tools never import kiosk code: agents run as processes. Tests that need the agent
in-process use the region for everything else.
"""

from host_tools.localregion.errors import LocalRegionError
from host_tools.localregion.events import EventTail
from host_tools.localregion.processes import (
    AgentProcess,
    DeskProcess,
    RegionalProcess,
    ServiceProcess,
)
from host_tools.localregion.region import LocalRegion
from host_tools.localregion.runner import Fieldterm

__all__ = [
    "AgentProcess",
    "DeskProcess",
    "EventTail",
    "Fieldterm",
    "LocalRegion",
    "LocalRegionError",
    "RegionalProcess",
    "ServiceProcess",
]
