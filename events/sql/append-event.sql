-- Append one event at the given version. The previous event's hash is read here, so the chain
-- is extended from what is stored; if the previous version does not exist, nothing is inserted
-- (the stream is not where the writer expected). A concurrent writer taking the same version
-- meets this one on the (stream, version) unique constraint.
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT events_take_positions(1), pg_current_xact_id(), %(stream)s::text, %(version)s::integer,
       %(id)s::uuid, %(type)s::text, %(schema_version)s::smallint, %(time)s::timestamptz,
       %(data)s::json, %(source)s::text, %(subject)s::text, %(metadata)s::json,
       sha256(prev.hash || %(digest)s::bytea)
FROM (
    SELECT hash FROM events WHERE stream = %(stream)s::text AND version = %(version)s::integer - 1
    UNION ALL
    SELECT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
    WHERE %(version)s::integer = 0
) AS prev
RETURNING position
