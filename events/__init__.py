"""What happened: the CloudEvents envelope, the execution event catalog, the event store, and what
every reader of its feed shares (checkpoints, the feed follower, the tables beside the events).

This package imports nothing else of ours; every other layer stands on it.
"""
