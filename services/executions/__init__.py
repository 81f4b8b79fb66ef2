"""The execution lifecycle: a pure decider (commands → events) and the service that runs it."""
