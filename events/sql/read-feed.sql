-- read_feed: the global feed after a position, in position order, up to p_limit events.
--
-- Only rows whose transaction is older than every transaction still running are read (the
-- horizon): they are final, and with positions taken in transaction order (take-positions.sql)
-- no event can later commit below them. A long-running write transaction anywhere on the server
-- holds the horizon back: readers then wait, but never skip.
--
-- The feed must be walked along the primary key and stop at p_limit. Without fresh statistics
-- the planner may instead collect every later row and sort it, which makes a catch-up read
-- quadratic, so this function turns those plans off for its own query.
DROP FUNCTION IF EXISTS read_feed(bigint, integer, text[], text);
CREATE FUNCTION read_feed(p_after bigint, p_limit integer, p_types text[], p_prefix text)
RETURNS TABLE ("position" bigint, stream text, version integer, event_id uuid, type text,
               schema_version smallint, "time" timestamptz, data text, source text,
               subject text, metadata text, hash bytea)
LANGUAGE plpgsql STABLE
SET enable_sort = off
SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN QUERY
    SELECT e.position, e.stream, e.version, e.event_id, e.type, e.schema_version, e.time,
           e.data::text, e.source, e.subject, e.metadata::text, e.hash
    FROM events e
    WHERE e.position > p_after
      AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
      AND (p_types IS NULL OR e.type = ANY (p_types))
      AND (p_prefix IS NULL OR starts_with(e.stream, p_prefix))
    ORDER BY e.position
    LIMIT p_limit;
END;
$$;
