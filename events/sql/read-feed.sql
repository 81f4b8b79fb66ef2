-- The global feed after a position, in position order, up to a limit.
--
-- Only rows whose transaction is older than every transaction still running are read (the
-- horizon): they are final, and with positions taken in transaction order (take-positions.sql)
-- no event can later commit below them. A long-running write transaction anywhere on the server
-- holds the horizon back: readers then wait, but never skip.
--
-- The feed must be walked along the primary key and stop at the limit. Without fresh statistics
-- the planner may instead collect every later row and sort it, which makes a catch-up read
-- quadratic; the store's connections therefore run with enable_sort and enable_bitmapscan off
-- (none of its queries needs either).
-- A large payload is left out (NULL) and read once per process (postgres_store.READ_COLUMNS);
-- its text is made once a row (OFFSET 0: not inlined into both places of the CASE).
SELECT position, stream, version, event_id, type, schema_version, time,
       CASE WHEN octet_length(data_text) < %(shared_from)s THEN data_text END, source,
       subject, metadata::text, hash
FROM events
     CROSS JOIN LATERAL (SELECT data::text AS data_text OFFSET 0) AS read_text
WHERE position > %(after)s
  AND tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
  AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
  AND (%(prefix)s::text IS NULL OR starts_with(stream, %(prefix)s::text))
ORDER BY position
LIMIT %(limit)s
