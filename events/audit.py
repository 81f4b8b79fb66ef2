"""Audit: recompute every stream's hash chain from the stored columns and report the first break.

Both backends feed ``verify_rows`` the same row layout, ordered by (stream, version), with data and
metadata as the exact text that was hashed on append.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from events.envelope import GENESIS_HASH, chain, content_digest
from events.store import ChainBreak, VerifyReport


def verify_rows(rows: Iterable[tuple]) -> VerifyReport:
    """Walk rows ordered by (stream, version) and return the first break, if any.

    Row layout: position, stream, version, event_id, type, schema_version, time, data, source,
    subject, metadata, hash; data and metadata as the stored text.
    """
    streams = events = 0
    current: str | None = None
    previous = GENESIS_HASH
    expected = 0
    for row in rows:
        (
            position,
            stream,
            version,
            event_id,
            etype,
            sv,
            when,
            data,
            source,
            subject,
            meta,
            stored,
        ) = row
        if isinstance(when, str):  # SQLite keeps times as ISO text and ids as 16 bytes
            when = datetime.fromisoformat(when)
        if isinstance(event_id, bytes):
            event_id = UUID(bytes=event_id)
        if stream != current:
            current, previous, expected = stream, GENESIS_HASH, 0
            streams += 1
        events += 1
        reason = None
        if version != expected:
            reason = f"version {version} where {expected} was expected (a gap)"
        else:
            digest = content_digest(
                event_id, stream, version, etype, sv, when, data, source, subject, meta
            )
            link = chain(previous, digest)
            if bytes(stored) != link:
                reason = "stored hash does not match the event's content and its predecessor"
        if reason:
            broken = ChainBreak(stream, version, position, str(event_id), reason)
            return VerifyReport(streams, events, broken)
        previous, expected = link, expected + 1
    return VerifyReport(streams, events, None)
