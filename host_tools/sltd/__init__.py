"""SLTD store (SQLite / PostgreSQL), query-path hash index and host tools.

Public entry points: :class:`host_tools.sltd.lookup.SltdLookup` (the regional query path),
:func:`host_tools.sltd.store.open_store`, :class:`host_tools.sltd.records.SltdRecord`.
"""
