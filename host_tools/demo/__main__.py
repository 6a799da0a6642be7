"""``python -m host_tools.demo`` (``make demo``)."""

import sys

from host_tools.demo import main

sys.exit(main())
