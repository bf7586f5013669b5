-- incidents, their audit trail, users and sessions, silences, health history and
-- per-class counts (for reports).
CREATE TABLE incidents (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    agent             TEXT    NOT NULL,
    camera            TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    place             TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    first_at_ms       INTEGER NOT NULL,
    last_at_ms        INTEGER NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    updated_at_ms     INTEGER NOT NULL,
    due_base_ms       INTEGER NOT NULL,
    event_count       INTEGER NOT NULL,
    snapshot_event_id TEXT,
    assignee          TEXT,
    acked_at_ms       INTEGER,
    acked_by          TEXT,
    closed_at_ms      INTEGER,
    closed_by         TEXT,
    overdue           INTEGER NOT NULL DEFAULT 0,
    escalations       INTEGER NOT NULL DEFAULT 0,
    silenced          INTEGER NOT NULL DEFAULT 0,
    active            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX incidents_key ON incidents (agent, camera, kind, place, state);
CREATE INDEX incidents_state ON incidents (state, id);
CREATE INDEX incidents_first ON incidents (first_at_ms);

-- Each stored event names its incident; the index replaces the one on event_id, so an
-- event costs no more B-tree inserts than before incidents existed.
ALTER TABLE events ADD COLUMN incident_id INTEGER;
DROP INDEX events_event_id;
CREATE INDEX events_incident ON events (incident_id);

-- The incident of each multi-phase agent incident, for its later update/end messages.
CREATE TABLE incident_starts (
    agent        TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (agent, event_id)
);

CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  INTEGER,
    at_ms        INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    from_state   TEXT,
    to_state     TEXT,
    note         TEXT
);
CREATE INDEX audit_incident ON audit (incident_id, id);

CREATE TABLE users (
    username       TEXT    NOT NULL PRIMARY KEY,
    password_hash  TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_sha256   TEXT    NOT NULL PRIMARY KEY,
    username       TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);

CREATE TABLE silences (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent          TEXT    NOT NULL,
    camera         TEXT,
    starts_at_ms   INTEGER NOT NULL,
    ends_at_ms     INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL
);

ALTER TABLE agents ADD COLUMN since_ms INTEGER;
UPDATE agents SET since_ms = received_at_ms;
ALTER TABLE cameras ADD COLUMN since_ms INTEGER;
UPDATE cameras SET since_ms = received_at_ms;

CREATE TABLE camera_history (
    agent   TEXT    NOT NULL,
    camera  TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX camera_history_at ON camera_history (agent, camera, at_ms);
INSERT INTO camera_history SELECT agent, camera, state, received_at_ms FROM cameras;

CREATE TABLE count_items (
    agent              TEXT    NOT NULL,
    seq                INTEGER NOT NULL,
    camera             TEXT    NOT NULL,
    line               TEXT    NOT NULL,
    class              TEXT    NOT NULL,
    direction          TEXT    NOT NULL,
    count              INTEGER NOT NULL,
    interval_start_ms  INTEGER NOT NULL
);
CREATE INDEX count_items_at ON count_items (interval_start_ms);

-- Per agent, the highest seq removed by retention: gaps are looked for above it.
CREATE TABLE seq_floor (
    agent  TEXT    NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL
);
