"""The shared :class:`~host_tools.localregion.LocalRegion` for tests, with one-shot
``fieldterm`` commands run in-process (provisioning a region per test would otherwise
start a Python process per command). Services still run as real processes."""

from __future__ import annotations

import contextlib
import io
import sys

from firmware.cli import main as fieldterm_main
from host_tools.localregion import Fieldterm, LocalRegionError


class InProcessFieldterm(Fieldterm):
    """``fieldterm ARGS`` through ``firmware.cli.main`` in this process."""

    def run(
        self, desc: str, *args: str, timeout: float = 600.0, input_text: str | None = None
    ) -> str:
        out, err = io.StringIO(), io.StringIO()
        stdin = sys.stdin
        try:
            if input_text is not None:
                sys.stdin = io.StringIO(input_text)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = fieldterm_main(list(args))
        finally:
            sys.stdin = stdin
        if rc != 0:
            raise LocalRegionError(
                f"{desc} failed (exit {rc}): fieldterm {' '.join(args)}\n{err.getvalue()[-2500:]}"
            )
        return out.getvalue()
