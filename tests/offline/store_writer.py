"""A kiosk-side download as its own process, for the power-cut test (killed with SIGKILL).

    python -m tests.offline.store_writer ROOT MANIFEST PAYLOAD PUBKEY_PEM REGION KEY_ID_HEX

Resumes whatever is under ROOT, fetches the missing chunks of PAYLOAD and installs the
list. Prints one line per step (flushed), so the test can kill it at a chosen step:
``missing N``, ``chunk I`` per chunk stored, ``install``, ``done V``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from firmware.offline.store import OfflineStore
from firmware.protocol.keys import load_ed25519_public


def main(argv: list[str]) -> int:
    root, manifest, payload, pub, region, kid = argv
    store = OfflineStore(
        Path(root), region=region, sign_public=load_ed25519_public(pub), key_id=bytes.fromhex(kid)
    )
    store.recover()
    data = Path(payload).read_bytes()
    dl = store.begin(Path(manifest).read_bytes())
    missing = dl.missing()
    print(f"missing {len(missing)}", flush=True)
    for i in missing:
        s, e = dl.manifest.chunk_span(i)
        dl.put(i, data[s:e])
        print(f"chunk {i}", flush=True)
    print("install", flush=True)
    lst = dl.install()
    print(f"done {lst.version}", flush=True)
    lst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
