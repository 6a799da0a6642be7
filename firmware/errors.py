"""One exception root for fieldterm, split by phase and by bad data.

Every error raised on purpose by fieldterm code derives from :class:`FieldtermError`.
Driver and library errors are wrapped at the boundary with ``raise ... from``.
"""

from __future__ import annotations


class FieldtermError(Exception):
    """Root of every fieldterm error."""


class SetupError(FieldtermError):
    """Something was wrong before operation began: config, keys, a missing device."""


class ConfigError(SetupError, ValueError):
    """Bad configuration. ``field`` names the offending key (``section.key``), ``source`` the file."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.field = field
        self.source = source
        where = ""
        if source:
            where += f"{source}: "
        if field:
            where += f"{field}: "
        super().__init__(f"{where}{message}")


class OperationError(FieldtermError):
    """A failure while running: the link dropped, a device vanished."""


class StorageError(OperationError):
    """A write to the card failed (full, read-only, I/O error): nothing new is accepted
    until it works again, and the officer is told (issue 14)."""


class FieldtermTimeout(OperationError, TimeoutError):
    """An operation did not complete in time. Never to be shown as "clear"."""


class BadDataError(FieldtermError, ValueError):
    """Input that does not meet its format. Subclasses name the field and position."""


class MrzError(BadDataError):
    """An MRZ defect: ``kind`` (check/semantic/structure/charset), ``field`` and ``position``.

    ``position`` is ``(line, column)``, both 0-based, or ``None`` when the defect has no single
    position (wrong line count). The message never contains MRZ text.
    """

    def __init__(self, kind: str, field: str, position: tuple[int, int] | None, detail: str = ""):
        self.kind = kind
        self.field = field
        self.position = position
        at = f" at line {position[0] + 1}, column {position[1] + 1}" if position else ""
        super().__init__(f"{kind} error in {field}{at}" + (f": {detail}" if detail else ""))

    @property
    def code(self) -> str:
        """The ``"<kind>:<field>"`` form used by the JSON output."""
        return f"{self.kind}:{self.field}"


class FramingError(BadDataError):
    """A scanner frame that cannot be decoded (bad BCC, overlong line). Names framing and offset."""


class EnvelopeError(BadDataError):
    """A protocol message that fails to parse, authenticate or pass replay checks.

    ``reason`` (optional) is a short machine-readable code, e.g. ``"aead"`` or ``"window"``.
    """

    reason: str | None = None

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason
