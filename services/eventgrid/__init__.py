"""Event Grid: publishing (the outbox relay), the push protocol, and a local emulator."""
