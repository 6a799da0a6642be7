"""paho-mqtt 2.x adapter (shared core)."""
