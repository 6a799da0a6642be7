"""A kiosk's ListSync as its own process, for the kill -9 test.

    python -m tests.offline.sync_runner TERMINAL_TOML STATE_DIR STOP_AFTER

Runs a ListSync over a real link with the bundle's identity. After STOP_AFTER chunks are
stored (each durable on disk) it prints ``stored N`` and stops storing (the worker waits
for ever), so the test SIGKILLs it in the middle of a download at a known point.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from firmware.config import ConfigDoc
from firmware.offline.config import OfflineTerminalConfig
from firmware.offline.listkey import key_id, load_list_key
from firmware.offline.store import OfflineStore
from firmware.offline.sync import ListSync
from firmware.protocol.keys import load_ed25519_public
from firmware.transport.mqtt import BrokerConfig, MqttLink


def main(argv: list[str]) -> int:
    toml, state_dir, stop_after = argv[0], Path(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    cfg = OfflineTerminalConfig.load(toml, state_dir=state_dir)
    store = OfflineStore(
        cfg.store_dir,
        region=cfg.region,
        sign_public=load_ed25519_public(cfg.sign_public),
        key_id=key_id(load_list_key(cfg.list_key)),
    )
    broker = BrokerConfig.from_section(ConfigDoc.load(toml).section("broker"))
    link = MqttLink(broker, "kiosk-sync-runner", on_message=lambda t, p: None)
    never = threading.Event()

    def progress(stored: int, total: int) -> None:
        if stored >= stop_after:
            print(f"stored {stored} of {total}", flush=True)
            never.wait()

    sync = ListSync(link, store, region=cfg.region, on_progress=progress, window=2)
    link.start()
    sync.start()
    never.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
