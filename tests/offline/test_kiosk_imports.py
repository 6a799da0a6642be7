"""The kiosk's offline code runs without the server's libraries (numpy, pyfusefilter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_kiosk_offline_modules_import_neither_numpy_nor_pyfusefilter() -> None:
    code = (
        "import sys, json\n"
        "import firmware.offline.cli, firmware.offline.config, firmware.offline.store\n"
        "import firmware.offline.listdir, firmware.offline.fusefile, firmware.offline.delta\n"
        "import firmware.offline.sync\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'pyfusefilter', 'host_tools'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == []
