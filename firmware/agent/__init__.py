"""The terminal agent (kiosk only): state machine, outbox, audit log, status, systemd glue.

Entry points: ``fieldterm agent`` (:mod:`firmware.agent.cli`) and ``fieldterm audit``
(:mod:`firmware.agent.audit_cli`). The pieces:

- :mod:`~firmware.agent.states`: the pure state machine (IDLE, READING, QUERYING, CLEAR,
  POSSIBLE_MATCH, UNKNOWN, RESCAN) and its rules for latches and late verdicts;
- :mod:`~firmware.agent.outbox`: accepted scans on disk (SQLite WAL) until answered;
- :mod:`~firmware.agent.audit`: the hash-chained audit log and its verifier;
- :mod:`~firmware.agent.core`: the event loop that ties them together, composed of
  :mod:`~firmware.agent.inbox` (events from any thread), :mod:`~firmware.agent.intake`
  (scan to document key), :mod:`~firmware.agent.ledger` (outbox and audit in step),
  :mod:`~firmware.agent.dispatch` (sending and re-sending), :mod:`~firmware.agent.presenter`
  (transitions and signals) and :mod:`~firmware.agent.heartbeat` (status), over the
  interfaces in :mod:`~firmware.agent.ports`;
- :mod:`~firmware.agent.agent`: wiring to the scanner, query client and signals;
- :mod:`~firmware.agent.status`, :mod:`~firmware.agent.systemd`: retained status with a last
  will; sd_notify and the watchdog.
"""
