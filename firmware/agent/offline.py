"""The offline list as the agent core uses it: answers by query id, and its health.

:class:`OfflineVerdicts` sits between the core and an
:class:`~firmware.offline.answerer.OfflineAnswerer` (the :class:`OfflinePort`):

- :meth:`lookup` is the state machine's ``offline_lookup``: the query's document key comes
  from its outbox row, the answerer says LISTED, NOT_LISTED or UNKNOWN. LISTED and
  NOT_LISTED become an :class:`~firmware.agent.states.OfflineResult`; UNKNOWN is None (the
  screen stays UNKNOWN) and :attr:`last_reason` says why (``none``, ``stale``, a refusal's
  reason, or ``no_key`` when the agent has no offline-list key at all).
- :meth:`report_answer` / :meth:`report_unknown`: an offline answer is recorded on the
  query's outbox row, audited ``offline`` (outcome, the list's version) and written as an
  ``offline`` event
  (``"offline": true``, list version and age, the cause); a fall-back to UNKNOWN is an
  ``offline`` event with outcome ``UNKNOWN`` and the reason. :func:`verdict_fields` adds
  the offline answer to the later online ``verdict`` event. :meth:`restored` gives the
  answers recorded on outbox rows back after a restart (even a kill -9), so the online
  verdict of a scan answered offline before it is still judged against its offline answer.
- :meth:`status` is the ``offline_list`` part of the retained status; :meth:`shown` is the
  list as the idle screen shows it (age rounded, so the view changes only every few
  minutes). With a list download running, :attr:`sync_status` adds its ``status()``
  (held and downloading versions, missing chunks, refusals by reason) as ``sync``.

Without an answerer (no key file) every lookup is None with reason ``no_key``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from firmware.agent.events import EventLog
from firmware.agent.ledger import QueryLedger
from firmware.agent.ports import OfflinePort
from firmware.agent.states import ListShown, OfflineResult, Transition

log = logging.getLogger(__name__)

LISTED = "LISTED"
NOT_LISTED = "NOT_LISTED"
NO_KEY = "no_key"


def age_hours(age_s: float) -> float:
    """Hours for the screen: tenths under 10 h, whole hours above."""
    h = age_s / 3600.0
    return round(h, 1) if h < 10 else float(round(h))


def verdict_fields(before: OfflineResult | None, outcome: str) -> dict[str, Any]:
    """For the online ``verdict`` event of a scan answered offline first: which answer it
    follows and whether it cleared an offline hit (nothing for other scans)."""
    if before is None:
        return {}
    return {
        "offline_answer": LISTED if before.listed else NOT_LISTED,
        "offline_list_version": before.list_version,
        "cleared": bool(before.listed and outcome == "NO_MATCH"),
    }


class OfflineVerdicts:
    """See the module docstring. The ledger gives a pending query's document key and
    takes the ``offline`` audit lines; ``events`` takes the ``offline`` events."""

    def __init__(self, answerer: OfflinePort | None, ledger: QueryLedger, events: EventLog):
        self.answerer = answerer
        self._ledger = ledger
        self._events = events
        self.last_reason: str | None = None if answerer is not None else NO_KEY
        #: The list download's ``status()`` (set by the agent when it runs one).
        self.sync_status: Callable[[], dict[str, Any]] | None = None
        self.last_answer: Any = None

    def lookup(self, query_id: bytes) -> OfflineResult | None:
        """The offline answer for a pending query, or None for UNKNOWN (see
        :attr:`last_reason`)."""
        self.last_answer = None
        if self.answerer is None:
            self.last_reason = NO_KEY
            return None
        dk = self._ledger.key_for(query_id)
        if dk is None:
            self.last_reason = "no outbox row"
            return None
        try:
            ans = self.answerer.answer(dk)
        except Exception as exc:  # a broken list must never stop the officer's answer
            log.warning("offline lookup failed: %s", exc)
            self.last_reason = "lookup failed"
            return None
        self.last_answer = ans
        if ans.verdict not in (LISTED, NOT_LISTED) or ans.list_version is None:
            self.last_reason = ans.reason or "unknown"
            return None
        self.last_reason = None
        return OfflineResult(
            listed=ans.verdict == LISTED,
            list_version=int(ans.list_version),
            list_age_s=float(ans.list_age_s or 0.0),
        )

    def report_answer(self, t: Transition, res: OfflineResult) -> None:
        """Audit and report an offline answer shown for ``t``'s query."""
        assert t.query_id is not None
        outcome = LISTED if res.listed else NOT_LISTED
        self._ledger.offline(t.query_id, outcome, res.list_version, res.list_age_s)
        self._events.write(
            "offline",
            seq=t.seq,
            qid=t.query_id.hex(),
            offline=True,
            outcome=outcome,
            list_version=res.list_version,
            list_age_s=round(res.list_age_s, 3),
            cause=t.cause,
        )

    def restored(self) -> dict[bytes, OfflineResult]:
        """The offline answers of pending queries as recorded before a restart."""
        return {
            qid: OfflineResult(m.listed, m.list_version, m.list_age_s)
            for qid, m in self._ledger.offline_answers().items()
        }

    def report_unknown(self, t: Transition) -> None:
        """Report that the offline list could not answer for ``t``'s query (UNKNOWN)."""
        self._events.write(
            "offline",
            seq=t.seq,
            qid=t.query_id.hex() if t.query_id else None,
            offline=True,
            outcome="UNKNOWN",
            reason=self.last_reason,
            cause=t.cause,
        )

    def status(self) -> dict[str, Any]:
        """Version, age, record count and staleness of the installed list (or the reason
        there is none), for the retained status."""
        if self.answerer is None:
            return {"list_version": None, "reason": NO_KEY}
        try:
            st = dict(self.answerer.status())
        except Exception as exc:
            log.warning("offline list status failed: %s", exc)
            st = {"list_version": None, "reason": "status failed"}
        if self.sync_status is not None:
            try:
                st["sync"] = self.sync_status()
            except Exception as exc:
                log.warning("offline list download status failed: %s", exc)
        return st

    def shown(self) -> ListShown:
        """The list as the idle screen shows it."""
        st = self.status()
        version = st.get("list_version")
        if version is None:
            return ListShown(None, None, usable=False, reason=st.get("reason"))
        age = age_hours(float(st.get("list_age_s") or 0.0))
        stale = bool(st.get("stale"))
        return ListShown(int(version), age, usable=not stale, reason="stale" if stale else None)
