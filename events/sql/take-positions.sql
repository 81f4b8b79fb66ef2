-- events_take_positions(n): the first of n consecutive global positions for this transaction.
--
-- Why a lock: the feed is read only below the oldest running transaction id (read_all's horizon),
-- which is safe only if a higher position never belongs to an older transaction. So the
-- transaction id is assigned and the positions are taken together under a short session-level
-- advisory lock, released before the insert and the commit: commits still run in parallel.
-- If anything fails while the lock is held, the client releases it with pg_advisory_unlock_all()
-- (see PostgresEventStore._append), and a closed session always releases it.
CREATE OR REPLACE FUNCTION events_take_positions(n integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
BEGIN
    PERFORM pg_advisory_lock(7305512648190263);
    PERFORM pg_current_xact_id();
    first := nextval('events_position_seq');
    IF n > 1 THEN
        PERFORM setval('events_position_seq', first + n - 1);
    END IF;
    PERFORM pg_advisory_unlock(7305512648190263);
    RETURN first;
END;
$$;
