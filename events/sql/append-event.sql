-- Append one event to a stream at the given version: append-events.sql for the common case of
-- a single event, with plain parameters instead of arrays (a third faster for the client).
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT events_take_positions(1), pg_current_xact_id(), %(stream)s::text, %(version)s::integer,
       %(id)s::uuid, %(type)s::text, %(schema_version)s::smallint, %(time)s::timestamptz,
       %(data)s::json, %(source)s::text, %(subject)s::text, %(metadata)s::json, %(hash)s::bytea
WHERE %(version)s::integer = 0
   OR EXISTS (SELECT FROM events
              WHERE stream = %(stream)s::text AND version = %(version)s::integer - 1
                AND hash = %(previous)s::bytea)
RETURNING position
