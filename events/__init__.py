"""What happened: the CloudEvents envelope, the execution event catalog and the event store.

This package imports nothing else of ours; every other layer stands on it.
"""
