-- Append one event to a stream at the given version: append-events.sql for the common case of
-- a single event, with plain parameters instead of arrays (a third faster for the client), each
-- used once and in order, so that they can travel as a plain tuple.
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT events_take_positions(1), pg_current_xact_id(), p.stream, p.version, p.event_id, p.type,
       p.schema_version, p.time, p.data, p.source, p.subject, p.metadata, p.hash
FROM (VALUES (%s::text, %s::integer, %s::uuid, %s::text, %s::smallint, %s::timestamptz,
              %s::json, %s::text, %s::text, %s::json, %s::bytea, %s::bytea))
     AS p(stream, version, event_id, type, schema_version, time, data, source, subject,
          metadata, hash, previous)
WHERE p.version = 0
   OR EXISTS (SELECT FROM events e
              WHERE e.stream = p.stream AND e.version = p.version - 1 AND e.hash = p.previous)
RETURNING position
