"""Benchmarks of the event store against a plain-table baseline and the eventsourcing library."""
