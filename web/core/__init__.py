"""The core Django app: health check, event store setup on migrate, and operations commands."""
