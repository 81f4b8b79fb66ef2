-- Append a batch of events to one stream at versions v, v + 1, … (v = the version parameter).
--
-- The client has chained the hashes from the stream's previous event (version v - 1), whose hash
-- it read or wrote before; this statement inserts only if that event is stored with exactly that
-- hash, so the chain always extends what is in the table. If it is not (the stream is elsewhere,
-- or the client's view is out of date), nothing is inserted; a concurrent writer taking the same
-- versions meets this one on the (stream, version) unique constraint.
-- Parameters travel in binary format: as text, psycopg quotes arrays slower than the server inserts.
INSERT INTO events (position, tx, stream, version, event_id, type, schema_version, time, data,
                    source, subject, metadata, hash)
SELECT f.position + u.ord - 1, pg_current_xact_id(), %(stream)b::text,
       %(version)b::integer + u.ord::integer - 1, u.id, u.type, u.sv, u.t, u.d, u.src, u.sub, u.md,
       u.h
FROM (SELECT events_take_positions(cardinality(%(ids)b::uuid[])) AS position
      WHERE %(version)b::integer = 0
         OR EXISTS (SELECT FROM events
                    WHERE stream = %(stream)b::text AND version = %(version)b::integer - 1
                      AND hash = %(previous)b::bytea)) AS f,
     unnest(%(ids)b::uuid[], %(types)b::text[], %(schema_versions)b::smallint[],
            %(times)b::timestamptz[], %(data)b::json[], %(sources)b::text[],
            %(subjects)b::text[], %(metadata)b::json[], %(hashes)b::bytea[]) WITH ORDINALITY
         AS u(id, type, sv, t, d, src, sub, md, h, ord)
RETURNING position
