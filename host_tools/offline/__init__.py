"""The build side of the offline list: filter, signed manifest, list directory (and deltas).

The kiosk side, which reads and verifies what is built here, is ``firmware.offline``.
"""
