"""Wire protocol: topics, document keys, envelopes, sessions (shared core)."""
