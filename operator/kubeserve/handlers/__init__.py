"""The kopf handlers: thin wiring from events to planning, applying and status."""
