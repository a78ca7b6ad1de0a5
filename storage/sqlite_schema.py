"""The SQLite store's tables, and the statements the writer runs on them.

One database per account: ``streams`` (configurations by name), ``stream_state`` (each
stream's counters, rewritten now and then: see ``sqlite_writer``), ``msgs`` (the
messages, keyed by stream and sequence, with an index by subject for filtered reads)
and ``consumers`` (configuration and state by stream and name).
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    config TEXT,
    created INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_state(
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    msgs INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS msgs(
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    subject BLOB NOT NULL,
    hdr BLOB,
    data BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY(stream_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS msgs_subject ON msgs(stream_id, subject, seq);
CREATE TABLE IF NOT EXISTS consumers(
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY(stream, name)
) WITHOUT ROWID;
"""

#: A stream's counter row.
SAVE_STATE = "INSERT OR REPLACE INTO stream_state VALUES (?,?,?,?,?,?,?)"
#: A stream's configuration, added or replaced by name.
SAVE_STREAM = (
    "INSERT INTO streams(name, config, created) VALUES (?,?,?) ON CONFLICT(name) "
    "DO UPDATE SET config = excluded.config, created = excluded.created"
)
#: A consumer's configuration and state.
SAVE_CONSUMER = "INSERT OR REPLACE INTO consumers VALUES (?,?,?,?)"
DELETE_CONSUMER = "DELETE FROM consumers WHERE stream = ? AND name = ?"
