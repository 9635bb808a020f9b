"""Alerts out of PostgreSQL: the relay publishes the sink's outbox to the alerts topic."""
