"""fieldterm terminal side: MRZ engine, wire protocol, scanner drivers, agent.

``firmware.mrz``, ``firmware.protocol``, ``firmware.scanner`` (framing) and
``firmware.transport`` are the shared core that host tools import too.
``firmware.signals`` and ``firmware.agent`` are kiosk-only.
"""

__version__ = "0.1.0"
