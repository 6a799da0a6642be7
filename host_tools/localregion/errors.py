"""The local region's own error: a part could not be set up or did not become ready."""

from __future__ import annotations

from firmware.errors import OperationError


class LocalRegionError(OperationError):
    """A step of the local region failed; the message names the step and shows its log."""
