"""The Event Grid webhook receiver: Event Grid pushes our events here so this process catches up
at once instead of at its next poll."""
