"""The start-up cross-check of the outbox against the audit log (issue 14).

The two files each record every accepted scan (the outbox until its verdict, the audit
log for ever), so each can vouch for the other at start:

- the outbox remembers the highest audit seq it saw with a scan (``audit_seen``); an
  audit log whose head is below it was cut, deleted or replaced;
- when the outbox was missing, empty or damaged (``needs_cross_check``), every audit
  ``accepted`` line without a ``verdict`` line must still have an outbox row: those that
  have none are lost scans, named by query id so the officer's supervisor can follow up.

Each finding is an alarm (FAULT on screen, an ``alarm`` event, the status); nothing is
silently reset. The full log is read only in the second case.
"""

from __future__ import annotations

from firmware.agent.audit import AuditLog
from firmware.agent.outbox import Outbox


def start_alarms(outbox: Outbox, audit: AuditLog) -> list[str]:
    """Everything the two stores found wrong at open, then the cross-check's findings."""
    alarms = [*audit.alarms, *outbox.alarms]
    seen = outbox.audit_seen()
    if audit.head.seq < seen:
        alarms.append(
            f"audit log {audit.path.name}: head is seq {audit.head.seq}, but the outbox "
            f"recorded a scan at seq {seen}: the log was cut, deleted or replaced"
        )
    if outbox.needs_cross_check:
        pending = {e.query_id for e in outbox.pending()}
        lost = sorted(q.hex() for q in audit.unanswered() - pending)
        if lost:
            shown = ", ".join(q[:12] for q in lost[:5]) + (" ..." if len(lost) > 5 else "")
            alarms.append(
                f"{len(lost)} accepted scans have neither a verdict nor an outbox row "
                f"(lost; query ids {shown}): check them manually"
            )
    return alarms
