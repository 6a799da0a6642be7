"""The offline answer for one scan, by the rules of issue 12, for the agent to call.

- A listed hash: ``LISTED`` (shown as POSSIBLE MATCH, offline list; a lead, latched).
- Not listed: ``NOT_LISTED`` with the list's age (never CLEAR).
- No list, a list older than ``max_age``, or one that failed verification: ``UNKNOWN``.

:class:`OfflineAnswerer` keeps the installed list mapped, reloads it after the store swaps
a new one in (:meth:`reload`), and drops the pages a lookup touched from the process's
resident set after every answer. Time comes from an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware.offline.errors import OfflineListError
from firmware.offline.listdir import OfflineList
from firmware.offline.store import OfflineStore
from firmware.protocol.dockey import DocumentKey

log = logging.getLogger(__name__)

LISTED = "LISTED"
NOT_LISTED = "NOT_LISTED"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class OfflineAnswer:
    """``verdict`` is LISTED, NOT_LISTED or UNKNOWN; ``reason`` says why UNKNOWN
    (``none``, ``stale`` or a refusal's reason code)."""

    verdict: str
    list_version: int | None = None
    list_age_s: float | None = None
    reason: str | None = None


class OfflineAnswerer:
    """Thread-safe offline answers from the store's installed list."""

    def __init__(
        self,
        store: OfflineStore,
        list_key: bytes,
        *,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self._key = list_key
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._list: OfflineList | None = None
        self._reason: str | None = "none"
        self.reload()

    def reload(self) -> None:
        """Map the store's current list (call after an install); on failure answer UNKNOWN
        with the refusal's reason until a good list is installed."""
        try:
            new: OfflineList | None = self.store.current()
            reason = None
        except OfflineListError as exc:
            log.warning("offline list unusable (%s): %s", exc.reason, exc)
            new, reason = None, exc.reason
        with self._lock:
            old, self._list, self._reason = self._list, new, reason
        if old is not None:
            old.close()

    def answer(self, dk: DocumentKey) -> OfflineAnswer:
        """The offline answer for ``dk`` now."""
        with self._lock:
            lst = self._list
            if lst is None:
                return OfflineAnswer(UNKNOWN, reason=self._reason)
            age = lst.age_s(self._clock())
            if age > self.max_age:
                return OfflineAnswer(UNKNOWN, lst.version, round(age, 3), reason="stale")
            hit = lst.listed(self._key, dk)
            lst.filter.release_pages()
            return OfflineAnswer(LISTED if hit else NOT_LISTED, lst.version, round(age, 3))

    def status(self) -> dict[str, Any]:
        """For the kiosk's health and idle screen: version, age, records (or the reason)."""
        with self._lock:
            lst = self._list
            if lst is None:
                return {"list_version": None, "reason": self._reason}
            age = lst.age_s(self._clock())
            return {
                "list_version": lst.version,
                "list_age_s": round(age, 3),
                "records": lst.records,
                "stale": age > self.max_age,
            }

    def close(self) -> None:
        with self._lock:
            lst, self._list = self._list, None
        if lst is not None:
            lst.close()

    def __enter__(self) -> OfflineAnswerer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
