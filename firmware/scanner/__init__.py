"""Scanner drivers: pure framers (bytes in, documents out) and the serial port reader.

Framings: ``lines``, ``stx`` (DESKO and Access-IS styles), ``rte`` (3M RTE), ``json``
(STX + JSON + ETX + CR LF) and ``auto``. Each framing module has ``encode(lines)``
for the simulator. The port reader lives in :mod:`firmware.scanner.port` (it imports
pyserial, so it is not imported here).
"""

from __future__ import annotations

from firmware.scanner.auto import CANDIDATES, AutoFramer, make_framer, sniff
from firmware.scanner.base import Framer, ScannedDocument
from firmware.scanner.framing_json import JsonFramer
from firmware.scanner.framing_lines import LinesFramer
from firmware.scanner.framing_rte import RteFramer
from firmware.scanner.framing_stx import StxFramer

#: Every framing name a config or a flag may use.
FRAMINGS = ("auto", *CANDIDATES)

__all__ = [
    "CANDIDATES",
    "FRAMINGS",
    "AutoFramer",
    "Framer",
    "JsonFramer",
    "LinesFramer",
    "RteFramer",
    "ScannedDocument",
    "StxFramer",
    "make_framer",
    "sniff",
]
