"""What one open session costs the regional in memory (issue 14: the live fuzz at 1 M grew
the regional by 67.9 MB). The cache holds up to ``max_sessions`` (100,000) sessions, and a
session used to keep a ``ChaCha20Poly1305`` object, about 2.2 kB of cipher state outside
Python's allocator: some 220 MB at the limit. Measured as the RSS of a fresh interpreter,
which is what the operator's machine pays (tracemalloc does not see OpenSSL's memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import re, sys
from firmware.protocol.dockey import DocumentKey
from firmware.protocol.session import RegionalSessions, TerminalSession
from tests.protocol.helpers import NOW, QID, REGION, TERMINAL, identity, kem

def rss_kb():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))

n = int(sys.argv[1])
ik, kp = identity(), kem()
dk = DocumentKey("UTO", "P", "L898902C3")
queries = [
    TerminalSession.new(
        region=REGION, terminal_id=TERMINAL, identity_key=ik,
        regional_kem_public=kp.public_key(), now=NOW,
    ).seal_query(QID, dk, NOW).payload
    for _ in range(n + 1)
]
rs = RegionalSessions(region=REGION, kem_private=kp, terminal_keys=lambda t: [ik.public_key()])
rs.open_query(TERMINAL, queries.pop(), NOW)  # first use of every code path
before = rss_kb()
for q in queries:
    rs.open_query(TERMINAL, q, NOW)
print(len(rs), (rss_kb() - before) * 1024 / n)
"""


def test_an_open_session_costs_well_under_a_kilobyte_and_a_half() -> None:
    n = 5000
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(n)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=300,
    ).stdout.split()  # fmt: skip
    sessions, per_session = int(out[0]), float(out[1])
    assert sessions == n + 1  # every ticket opened a session of its own
    # about 700 bytes now (ids, secret, query key, times); 2,900 with a cipher object kept
    assert per_session < 1500, f"{per_session:.0f} bytes per open session"
