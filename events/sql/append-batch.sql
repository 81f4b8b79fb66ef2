-- Append a batch at versions v, v + 1, … (v = the version parameter), like append-event.sql,
-- with the hash chain extended event by event in a recursive CTE. Parameters travel in binary
-- as text, psycopg spends longer quoting the arrays than the server spends inserting them.
WITH RECURSIVE links(ord, hash) AS (
    SELECT 0::bigint, hash FROM events
    WHERE stream = %(stream)b::text AND version = %(version)b::integer - 1
    UNION ALL
    SELECT 0::bigint, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
    WHERE %(version)b::integer = 0
    UNION ALL
    SELECT l.ord + 1, sha256(l.hash || (%(digests)b::bytea[])[l.ord + 1])
    FROM links l WHERE l.ord < cardinality(%(ids)b::uuid[])
), first AS (
    SELECT events_take_positions(cardinality(%(ids)b::uuid[])) AS position
    WHERE EXISTS (SELECT 1 FROM links WHERE ord = 0)
)
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT f.position + u.ord - 1, pg_current_xact_id(), %(stream)b::text,
       %(version)b::integer + u.ord::integer - 1, u.id, u.type, u.sv, u.t, u.d, u.src, u.sub, u.md,
       l.hash
FROM first f,
     unnest(%(ids)b::uuid[], %(types)b::text[], %(schema_versions)b::smallint[],
            %(times)b::timestamptz[], %(data)b::json[], %(sources)b::text[],
            %(subjects)b::text[], %(metadata)b::json[]) WITH ORDINALITY
         AS u(id, type, sv, t, d, src, sub, md, ord)
     JOIN links l ON l.ord = u.ord
RETURNING position
