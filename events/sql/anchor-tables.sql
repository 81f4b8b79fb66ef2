-- The audit anchors (events/anchors.py): keyed checkpoints of the feed, beside the events.
-- Each row carries an HMAC made with a key the database never holds, so a writer without the
-- key can delete or alter rows here but cannot make rows that verify. Rows are replaced as the
-- feed advances; the events table itself is still never updated.
--
-- audit_feed_anchor: one row ('feed'), the anchored head of the global feed.
CREATE TABLE IF NOT EXISTS audit_feed_anchor (
    name text PRIMARY KEY,
    position bigint NOT NULL,       -- every event up to here is covered
    events bigint NOT NULL,         -- how many events up to there
    streams bigint NOT NULL,        -- how many streams began up to there
    feed_hash bytea NOT NULL,       -- the running hash of those events in feed order
    started_at text NOT NULL,       -- when anchoring began (position 0)
    anchored_at text NOT NULL,
    key_id text NOT NULL,           -- which key signed (a fingerprint, not the key)
    mac bytea NOT NULL
);

-- audit_stream_anchors: each stream's anchored head.
CREATE TABLE IF NOT EXISTS audit_stream_anchors (
    stream text PRIMARY KEY,
    version integer NOT NULL,
    position bigint NOT NULL,
    hash bytea NOT NULL,            -- the chain hash of the event at that version
    key_id text NOT NULL,
    mac bytea NOT NULL
);
