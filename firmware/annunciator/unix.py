"""Run the panel under the MicroPython unix port with the recording fake (tests, demo):

MICROPYPATH=<lib>:<firmware> micropython -m annunciator.unix CONFIG_DIR [MEMORY_MS]
"""

import sys

from . import frames, main
from .hw import RecordingPanel


def start():
    config_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    memory_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    print(f"panel start hmac={frames.HMAC_SOURCE}")
    main.run(config_dir, RecordingPanel(), memory_every_ms=memory_ms)


start()
