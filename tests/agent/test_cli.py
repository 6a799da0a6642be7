"""`fieldterm agent` command line: overrides and journald-friendly logging."""

from __future__ import annotations

import argparse
import logging

import pytest

from firmware.agent import cli
from firmware.cli import main


def test_overrides_map_flags_to_sections():
    ns = argparse.Namespace(
        signals="console",
        display="console",
        scanner_port="/dev/pts/9",
        state_dir="/tmp/s",
        events_file=None,
        language="ru",
    )
    assert cli._overrides(ns) == {
        "signals": {"backend": "console", "display": "console"},
        "scanner": {"port": "/dev/pts/9"},
        "agent": {"state_dir": "/tmp/s"},
        "terminal": {"language": "ru"},
    }


def test_journal_logging_has_priority_and_no_timestamp(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:999")
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), [h.formatter for h in root.handlers])
    handler = logging.StreamHandler()
    root.handlers = [handler]
    try:
        cli.configure_journal_logging()
        rec = logging.LogRecord(
            "firmware.agent.core",
            logging.WARNING,
            __file__,
            1,
            "POSSIBLE MATCH on scan #%s",
            (4,),
            None,
        )
        assert handler.formatter.format(rec) == "<4>firmware.agent.core: POSSIBLE MATCH on scan #4"
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]


def test_help_mentions_signals(capsys):
    with pytest.raises(SystemExit) as e:
        main(["agent", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "SIGTERM" in out and "--signals" in out
