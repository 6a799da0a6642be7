"""Sealed query client and `fieldterm query` (shared core)."""
