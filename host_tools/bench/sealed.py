"""The sealed side of ``bench regional``: terminals whose every verdict is checked.

Each simulated terminal is a real :class:`~firmware.client.client.QueryClient` from its
provisioned bundle, so a query is sealed, sent, opened, looked up, audited and answered
by a real ``fieldterm regional`` process. The documents come from the list's own
samples: one query in ``hit_every`` is for a listed document, which must answer
``POSSIBLE_MATCH``; every other one is unlisted and must answer ``NO_MATCH``. Anything
else is *wrong*. A ``TIMEOUT`` is no answer (the query is *lost*), and an answer after
the terminal's timeout is counted as *late*.

``wrong_key_terminal`` makes the benchmark's fault: a terminal that seals its queries to
an X25519 key that is not the regional's, so the regional refuses every one of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.client.client import QueryClient, Verdict
from firmware.client.config import ClientConfig
from firmware.errors import SetupError
from host_tools.bench.loadgen import Done, Tally


class DocumentPicker:
    """The next document to ask about and the verdict the list requires (thread-safe)."""

    def __init__(self, listed: list[Any], unlisted: list[Any], hit_every: int):
        if not listed or not unlisted:
            raise SetupError("the list's samples are empty: no documents to query")
        self._listed = listed
        self._unlisted = unlisted
        self._hit_every = max(1, hit_every)
        self._n = itertools.count()  # next() on a count is atomic under the GIL

    def next(self) -> tuple[Any, str]:
        n = next(self._n)
        if n % self._hit_every == self._hit_every - 1:
            return self._listed[n % len(self._listed)], "POSSIBLE_MATCH"
        return self._unlisted[n % len(self._unlisted)], "NO_MATCH"


@dataclasses.dataclass
class SealedTally(Tally):
    """:class:`Tally` plus what only sealed queries have: timeouts, late answers, outcomes."""

    timeouts: int = 0
    late: int = 0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)

    def on_verdict(self, v: Verdict, expected: str) -> bool:
        """Count one verdict; True when it is a timely answer that agrees with the list."""
        if v.outcome == "TIMEOUT":
            with self._lock:
                self.timeouts += 1
            return False
        with self._lock:
            self.outcomes[v.outcome] += 1
            self.late += v.late
        self.on_answer(v.outcome == expected)
        return v.outcome == expected and not v.late


class SealedTerminal:
    """A submitter for :class:`~host_tools.bench.loadgen.WindowedLoad` over one client."""

    def __init__(
        self,
        client: QueryClient,
        picker: DocumentPicker,
        tally: SealedTally,
        timeout: float,
    ):
        self.client = client
        self._picker = picker
        self._tally = tally
        self._timeout = timeout

    def submit(self, done: Done) -> None:
        dk, expected = self._picker.next()
        tally = self._tally

        def on_verdict(v: Verdict) -> None:
            right = tally.on_verdict(v, expected)
            if not v.late:  # the load generator already had this query's TIMEOUT
                done(right)

        tally.on_sent()
        self.client.submit(os.urandom(16), dk, on_verdict, timeout=self._timeout)

    def close(self) -> None:
        self.client.close()


def open_terminal(
    cfg: ClientConfig,
    picker: DocumentPicker,
    tally: SealedTally,
    timeout: float,
    *,
    client_id: str | None = None,
) -> SealedTerminal:
    """Start a query client from ``cfg``; return once it is ready (connected, and its
    response subscription granted)."""
    client = QueryClient(cfg, client_id=client_id).start()
    if not client.wait_connected(20.0):
        client.close()
        raise SetupError(f"terminal {cfg.terminal_id} did not connect to the broker")
    return SealedTerminal(client, picker, tally, timeout)


def wrong_key_terminal(
    cfg: ClientConfig, keydir: Path, picker: DocumentPicker, tally: SealedTally, timeout: float
) -> SealedTerminal:
    """The terminal of ``cfg`` (as a second MQTT client) sealing to a key of its own making
    instead of the regional's public key: the regional can open none of its queries."""
    keydir.mkdir(parents=True, exist_ok=True)
    pub = keydir / "not-the-regional-kem.pub"
    pub.write_bytes(
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = dataclasses.replace(cfg, regional_kem_public=pub)
    return open_terminal(wrong, picker, tally, timeout, client_id=f"{cfg.terminal_id}-wrong-key")
