"""Regenerate vectors/envelope_v1.json (run by hand only when the format version changes)."""

from __future__ import annotations

import json
from pathlib import Path

from firmware.protocol.messages import Response
from firmware.protocol.session import RegionalSessions, TerminalSession
from tests.protocol.helpers import DK, NOW, QID, REGION, TERMINAL, counter_rng, identity, kem

OUT = Path(__file__).parent / "vectors" / "envelope_v1.json"
RESPONSE = Response(QID, "POSSIBLE_MATCH", 42, {"status": "stolen", "reporting_country": "DEU"})


def session_from(vec: dict[str, str]) -> TerminalSession:
    """Rebuild the terminal session of a vector (the HPKE ticket itself is random)."""
    return TerminalSession(
        region=REGION,
        terminal_id=TERMINAL,
        session_id=bytes.fromhex(vec["session_id"]),
        secret=bytes.fromhex(vec["secret"]),
        ticket=bytes.fromhex(vec["ticket"]),
        expires_at=float(vec["expires_at"]),
        rng=counter_rng("query"),
    )


def build(vec: dict[str, str]) -> dict[str, str]:
    """Query and response bytes for the session in ``vec`` (deterministic)."""
    ts = session_from(vec)
    sq = ts.seal_query(QID, DK, NOW)
    rs = RegionalSessions(
        region=REGION, kem_private=kem(), terminal_keys=lambda t: [identity().public_key()]
    )
    opened = rs.open_query(TERMINAL, sq.payload, NOW + 1)
    resp = rs.seal_response(opened, RESPONSE, rng=counter_rng("response"))
    return {"query": sq.payload.hex(), "query_nonce": sq.nonce.hex(), "response": resp.hex()}


def main() -> None:
    rng = counter_rng("session")
    secret, sid = rng(32), rng(16)
    feed = iter([secret, sid])
    ts = TerminalSession.new(
        region=REGION,
        terminal_id=TERMINAL,
        identity_key=identity(),
        regional_kem_public=kem().public_key(),
        now=NOW,
        rng=lambda n: next(feed),
    )
    vec = {
        "region": REGION,
        "terminal": TERMINAL,
        "now": str(NOW),
        "dk": DK.canonical().decode(),
        "query_id": QID.hex(),
        "session_id": sid.hex(),
        "secret": secret.hex(),
        "ticket": ts.ticket.hex(),
        "expires_at": str(ts.expires_at),
    }
    vec.update(build(vec))
    OUT.write_text(json.dumps(vec, indent=1) + "\n")


if __name__ == "__main__":
    main()
