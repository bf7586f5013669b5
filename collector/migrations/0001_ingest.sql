-- the ingest tables.
CREATE TABLE events (
    agent           TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    phase           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    camera          TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    observed_at     TEXT    NOT NULL,
    observed_at_ms  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_observed ON events (observed_at_ms);

CREATE TABLE snapshots (
    event_id        TEXT    NOT NULL PRIMARY KEY,
    agent           TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL
);
CREATE INDEX snapshots_sha256 ON snapshots (sha256);

CREATE TABLE counts (
    agent             TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    camera            TEXT    NOT NULL,
    line              TEXT    NOT NULL,
    interval_start    TEXT    NOT NULL,
    interval_start_ms INTEGER NOT NULL,
    interval_end      TEXT    NOT NULL,
    interval_end_ms   INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    received_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
);

CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    error           TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL
);

CREATE TABLE agents (
    agent           TEXT    NOT NULL PRIMARY KEY,
    state           TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    cameras         TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    received_at_ms  INTEGER NOT NULL
);

CREATE TABLE cameras (
    agent           TEXT    NOT NULL,
    camera          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    fps             REAL,
    error           TEXT,
    at              TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, camera)
);
