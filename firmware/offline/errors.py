"""Refusals of an offline list, each with its own class and a fixed ``reason`` code.

Every refusal is an :class:`~firmware.errors.EnvelopeError` (so a :class:`BadDataError`):
the list came from elsewhere and did not meet its format or its signature. The kiosk
keeps the list it holds when a new one is refused.
"""

from __future__ import annotations

from firmware.errors import EnvelopeError


class OfflineListError(EnvelopeError):
    """An offline list (manifest, filter file, delta or download) that is refused."""

    default_reason = "structure"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message, reason=reason or self.default_reason)


class ListFormatError(OfflineListError):
    """A filter, delta or manifest that does not meet its layout (field named in the message)."""

    default_reason = "structure"


class ListSignatureError(OfflineListError):
    """The manifest's signature does not verify with the pinned regional key."""

    default_reason = "signature"


class ListRegionError(OfflineListError):
    """The manifest is for another region."""

    default_reason = "region"


class ListRollbackError(OfflineListError):
    """The manifest's version is older than the installed one (or equal, with other content)."""

    default_reason = "rollback"


class ListChunkError(OfflineListError):
    """A chunk (or the whole payload) whose SHA-256 or size differs from the manifest."""

    default_reason = "chunk"


class ListKeyError(OfflineListError):
    """The list was built under another offline-list key than the one this kiosk holds."""

    default_reason = "key"


class ListBaseError(OfflineListError):
    """A delta whose base is not the full list this kiosk holds."""

    default_reason = "base"


class ListIncompleteError(OfflineListError):
    """A download that is not complete (chunks missing) was asked to be installed."""

    default_reason = "incomplete"
