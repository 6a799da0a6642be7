"""``json`` framing: STX, a JSON object, ETX, CR LF.

The MRZ text is the object's string field ``data``, lines separated by ``\\n`` (a
``\\r\\n`` is accepted too). Other fields, such as ``type``, are ignored. JSON escapes
control characters, so a raw ETX can only end the object. A body that is not a JSON
object with a string ``data`` is a bad frame; an object whose ``data`` holds no MRZ-like
line (a barcode, say) is another message and counts as junk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

from firmware.scanner.framing_stx import ETX, STX, StxFramer

NAME = "json"
#: Longest JSON body accepted.
MAX_FRAME = 4096


def encode(lines: Sequence[str], doc_type: str = "MRZ") -> bytes:
    """The bytes of one frame: ``STX {"type": ..., "data": "line\\nline"} ETX CR LF``."""
    obj = {"type": doc_type, "data": "\n".join(lines)}
    return bytes([STX]) + json.dumps(obj).encode("ascii") + bytes([ETX]) + b"\r\n"


class JsonFramer(StxFramer):
    """STX + JSON + ETX framer: the STX/ETX state machine with a JSON body."""

    name: ClassVar[str] = NAME
    max_buffer: ClassVar[int] = MAX_FRAME

    def _decode(self, body: bytes) -> None:
        try:
            obj = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self._bad(self._frame_start, f"body is not UTF-8 (byte {exc.start} of the body)")
            return
        except json.JSONDecodeError as exc:
            self._bad(self._frame_start, f"body is not JSON ({exc.msg} at char {exc.pos})")
            return
        except (ValueError, RecursionError):
            self._bad(self._frame_start, "body is not usable JSON")
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), str):
            self._bad(self._frame_start, "body is not an object with a string field 'data'")
            return
        text: str = obj["data"]
        lines = [s.rstrip("\r") for s in text.split("\n")]
        self._emit_if_mrz([s for s in lines if s.strip()], len(body) + 2)
