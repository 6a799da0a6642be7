"""The offline list on the kiosk: a signed binary fuse filter over keyed document hashes.

``fusefile`` reads the filter file (memory-mapped, looked up in pure Python),
``manifest`` verifies the regional's signed manifest, ``store`` keeps the installed list
and swaps a new one in atomically, ``listdir`` verifies a list directory as a whole.
See docs/offline-list.md. The build side lives in ``host_tools.offline``.
"""
