"""The supervisor's annunciator panel: MicroPython code (rp2 / esp32 ports, and the unix
port in tests). Nothing here may import a CPython-only module; see docs/annunciator.md.
On the board this directory is copied as /annunciator and started from main.py."""
