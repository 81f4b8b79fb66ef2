-- The events table: one row per event, never updated or deleted.
-- position: the global feed order, handed out in transaction-id order (see append-events.sql).
-- tx: the writing transaction's id, which readers compare to their snapshot (see read_all).
CREATE SEQUENCE IF NOT EXISTS events_position_seq;

CREATE TABLE IF NOT EXISTS events (
    position bigint PRIMARY KEY,
    tx xid8 NOT NULL,
    stream text NOT NULL,
    version integer NOT NULL,
    event_id uuid NOT NULL,
    type text NOT NULL,
    schema_version smallint NOT NULL,
    time timestamptz NOT NULL,
    data json NOT NULL,
    source text NOT NULL,
    subject text NOT NULL,
    metadata json NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream, version),
    CONSTRAINT events_event_id UNIQUE (event_id)
);
