-- The audit anchors on SQLite: the same tables as anchor-tables.sql (read its comments).
CREATE TABLE IF NOT EXISTS audit_feed_anchor (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    events INTEGER NOT NULL,
    streams INTEGER NOT NULL,
    feed_hash BLOB NOT NULL,
    started_at TEXT NOT NULL,
    anchored_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    mac BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_stream_anchors (
    stream TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    hash BLOB NOT NULL,
    key_id TEXT NOT NULL,
    mac BLOB NOT NULL
);
