-- event clips. Parts wait in the database (collectors sharing a PostgreSQL may each
-- get some parts of one clip); the whole clip is a content-addressed file.
CREATE TABLE clip_parts (
    agent           TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    part            INTEGER NOT NULL,
    parts           INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    camera          TEXT    NOT NULL,
    duration_ms     INTEGER NOT NULL,
    start_ms        INTEGER NOT NULL,
    data            BLOB    NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, event_id, part)
);
CREATE TABLE clips (
    agent           TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    camera          TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    start_ms        INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, event_id)
);
CREATE INDEX clips_received ON clips (received_at_ms);
