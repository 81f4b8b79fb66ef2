-- Append a batch at versions %(version)s, %(version)s + 1, ...: like append-event.sql, with the
-- hash chain extended event by event in a recursive CTE.
WITH RECURSIVE links(ord, hash) AS (
    SELECT 0::bigint, hash FROM events
    WHERE stream = %(stream)s::text AND version = %(version)s::integer - 1
    UNION ALL
    SELECT 0::bigint, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
    WHERE %(version)s::integer = 0
    UNION ALL
    SELECT l.ord + 1, sha256(l.hash || (%(digests)s::bytea[])[l.ord + 1])
    FROM links l WHERE l.ord < cardinality(%(ids)s::uuid[])
), first AS (
    SELECT events_take_positions(cardinality(%(ids)s::uuid[])) AS position
    WHERE EXISTS (SELECT 1 FROM links WHERE ord = 0)
)
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT f.position + u.ord - 1, pg_current_xact_id(), %(stream)s::text,
       %(version)s::integer + u.ord::integer - 1, u.id, u.type, u.sv, u.t, u.d, u.src, u.sub, u.md,
       l.hash
FROM first f,
     unnest(%(ids)s::uuid[], %(types)s::text[], %(schema_versions)s::smallint[],
            %(times)s::timestamptz[], %(data)s::json[], %(sources)s::text[],
            %(subjects)s::text[], %(metadata)s::json[]) WITH ORDINALITY
         AS u(id, type, sv, t, d, src, sub, md, ord)
     JOIN links l ON l.ord = u.ord
RETURNING position
