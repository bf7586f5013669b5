-- hardening. Snapshots keyed by (agent, event): one agent cannot stand in for another's
-- evidence. Events keep the snapshot hash they declare (checked against the JPEG) and
-- where their stored time came from; retention goes by receive time. Dead letters keep
-- their original size (the payload is cut). Agents and cameras: when a live status last
-- confirmed them (`heard_at_ms`), and each agent's clock as measured and as it says.
CREATE TABLE snapshots_by_agent (
    agent           TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, event_id)
);
INSERT INTO snapshots_by_agent
    SELECT agent, event_id, sha256, size, path, received_at_ms FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_by_agent RENAME TO snapshots;
CREATE INDEX snapshots_sha256 ON snapshots (sha256);
CREATE INDEX snapshots_received ON snapshots (received_at_ms);

ALTER TABLE events ADD COLUMN snapshot_sha256 TEXT;
ALTER TABLE events ADD COLUMN time_source TEXT;
CREATE INDEX events_snapshot ON events (agent, event_id) WHERE snapshot_sha256 IS NOT NULL;
CREATE INDEX events_received ON events (received_at_ms);
ALTER TABLE counts ADD COLUMN time_source TEXT;
CREATE INDEX counts_received ON counts (received_at_ms);

ALTER TABLE dead_letters ADD COLUMN size INTEGER;
UPDATE dead_letters SET size = length(payload);
CREATE INDEX dead_letters_received ON dead_letters (received_at_ms);

ALTER TABLE agents ADD COLUMN heard_at_ms INTEGER;
UPDATE agents SET heard_at_ms = received_at_ms;
ALTER TABLE agents ADD COLUMN clock_skew_ms INTEGER;
ALTER TABLE agents ADD COLUMN clock TEXT;
ALTER TABLE cameras ADD COLUMN heard_at_ms INTEGER;
UPDATE cameras SET heard_at_ms = received_at_ms;
