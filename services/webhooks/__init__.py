"""User webhooks' building blocks: users register https endpoints that receive their executions'
events as CloudEvents JSON. ``signing`` signs each delivery per Standard Webhooks (with two
secrets during a rotation), ``ssrf`` checks a URL and pins the one public address to connect
to, ``sender`` makes one delivery to that address and reports an ``Outcome`` without raising,
and ``schedule`` says when to try again. The delivery worker (queue, bookkeeping, database)
is built on these.
"""
