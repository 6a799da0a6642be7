"""fieldterm off-device tools: regional service, SLTD data, provisioning, simulators, benchmarks.

Host tools import the shared core of :mod:`firmware` (MRZ, protocol, framing, transport)
and never the kiosk hardware backends (``firmware.signals``) or the agent.
"""
