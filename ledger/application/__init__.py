"""Runs commands against the event store: one handler per command, idempotency, group commit."""
