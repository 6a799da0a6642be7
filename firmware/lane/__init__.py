"""Lane frames: the kiosk's side of the supervisor's annunciator (docs/annunciator.md)."""
