-- camera analytics pushed from the center, every version kept (who, when, what).
CREATE TABLE analytics_versions (
    agent           TEXT    NOT NULL,
    camera          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    config          TEXT    NOT NULL,
    changed_by      TEXT    NOT NULL,
    changed_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (agent, camera, version)
);
