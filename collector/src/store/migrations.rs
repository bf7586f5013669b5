//! The schema's history: one SQL file per step in `collector/migrations/`, applied in order
//! and recorded as the schema version (see [`Db::schema_version`]).
//!
//! `NNNN_name.sql` brings a database from version `NNNN - 1` to `NNNN`; it is written once
//! for both engines in the common subset (SQLite's type names, translated for PostgreSQL by
//! [`Db::ddl`]). Where the engines differ (reading JSON), `NNNN_name.backfill.sqlite.sql` and
//! `NNNN_name.backfill.postgres.sql` run after it. Append only: a migration that has shipped
//! is never edited, since databases out there have run it.

use super::db::{Db, DbError, Dialect};

/// One step of the schema.
pub(super) struct Migration {
    /// `NNNN_name`, as its file is named.
    pub name: &'static str,
    /// The script, in the common subset.
    script: &'static str,
    /// What runs after it, per engine.
    backfill: Option<(&'static str, &'static str)>,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            script: include_str!(concat!("../../migrations/", $name, ".sql")),
            backfill: None,
        }
    };
    ($name:literal, backfill) => {
        Migration {
            name: $name,
            script: include_str!(concat!("../../migrations/", $name, ".sql")),
            backfill: Some((
                include_str!(concat!("../../migrations/", $name, ".backfill.sqlite.sql")),
                include_str!(concat!(
                    "../../migrations/",
                    $name,
                    ".backfill.postgres.sql"
                )),
            )),
        }
    };
}

/// Every migration, in order: migration `i` brings version `i` to `i + 1`.
pub(super) const ALL: &[Migration] = &[
    migration!("0001_ingest"),
    migration!("0002_incidents", backfill),
    migration!("0003_camera_figures"),
    migration!("0004_hardening"),
    migration!("0005_names", backfill),
    migration!("0006_clips"),
    migration!("0007_analytics"),
];

/// Brings `db` (inside a transaction holding the migration lock, at version `from`) up to
/// version `to`, one recorded step at a time.
pub(super) fn apply(db: &Db, database: &str, from: u32, to: u32) -> Result<(), DbError> {
    for (i, m) in ALL.iter().enumerate().take(to as usize).skip(from as usize) {
        tracing::info!(
            database,
            to = i + 1,
            migration = m.name,
            "migrating database schema"
        );
        db.batch(&db.ddl(m.script))?;
        if let Some((sqlite, postgres)) = m.backfill {
            db.batch(match db.dialect() {
                Dialect::Sqlite => sqlite,
                Dialect::Postgres => postgres,
            })?;
        }
        db.set_schema_version(i as u32 + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{migrate_to, StoreError, SCHEMA_VERSION};
    use super::*;

    fn count(db: &Db, sql: &str) -> i64 {
        db.query_one(sql, &[]).unwrap().get(0).unwrap()
    }

    /// Migrates `db` one step at a time, storing rows in the shape of the version they were
    /// written at, and checks after each step the recorded version, and at the end that
    /// every row made it through and the backfills filled what they should.
    fn step_by_step(db: &Db) {
        assert_eq!(db.schema_version().unwrap(), 0);
        migrate_to(db, "t", 1).unwrap();
        assert_eq!(db.schema_version().unwrap(), 1);
        // Version 1: one event and one counts report (three per-class counts).
        db.batch(
            "INSERT INTO events VALUES ('site-a', 1, 'site-a-1', 'start', 'loitering', 'gate', \
             'warning', '2024-05-01T00:00:00Z', 1714521600000, \
             '{\"rule\": \"lingering\"}', 1714521600001); \
             INSERT INTO counts VALUES ('site-a', 2, 'gate', 'walk', '2024-05-01T00:00:00Z', \
             1714521600000, '2024-05-01T00:05:00Z', 1714521900000, \
             '{\"counts\": [{\"class\": \"person\", \"direction\": \"in\", \"count\": 4}, \
             {\"class\": \"person\", \"direction\": \"out\", \"count\": 2}, \
             {\"class\": \"car\", \"direction\": \"in\", \"count\": 1}]}', 1714521900001)",
        )
        .unwrap();
        for v in 2..=SCHEMA_VERSION {
            migrate_to(db, "t", v).unwrap();
            assert_eq!(
                db.schema_version().unwrap(),
                v,
                "after {}",
                ALL[v as usize - 1].name
            );
            if v == 4 {
                // Version 4: the event filed under an incident that has no rule yet.
                db.batch(
                    "INSERT INTO incidents (agent, camera, kind, place, severity, state, source, \
                     first_at_ms, last_at_ms, created_at_ms, updated_at_ms, due_base_ms, \
                     event_count) VALUES ('site-a', 'gate', 'loitering', 'corner', 'warning', \
                     'open', 'event', 1714521600000, 1714521600000, 1714521600001, \
                     1714521600001, 1714521600001, 1); \
                     UPDATE events SET incident_id = (SELECT MAX(id) FROM incidents)",
                )
                .unwrap();
            }
        }
        assert_eq!(count(db, "SELECT COUNT(*) FROM events"), 1);
        // 2's backfill: the stored report's counts, one row each.
        assert_eq!(count(db, "SELECT COUNT(*) FROM count_items"), 3);
        assert_eq!(
            count(
                db,
                "SELECT CAST(SUM(count) AS BIGINT) FROM count_items WHERE class = 'person'"
            ),
            6
        );
        // 5's backfill: the incident's rule, from its first event.
        let rule: String = db
            .query_one("SELECT rule FROM incidents", &[])
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(rule, "lingering");
        // Run again: nothing to do. A database from a newer collector is refused.
        migrate_to(db, "t", SCHEMA_VERSION).unwrap();
        db.set_schema_version(SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(
            migrate_to(db, "t", SCHEMA_VERSION),
            Err(StoreError::TooNew { .. })
        ));
    }

    #[test]
    fn every_migration_keeps_the_rows_of_the_version_before_on_sqlite() {
        step_by_step(&Db::sqlite(rusqlite::Connection::open_in_memory().unwrap()));
    }

    #[test]
    fn every_migration_keeps_the_rows_of_the_version_before_on_postgres() {
        let server = ioc_testkit::postgres::Postgres::start(false).unwrap();
        let url = server.create_database("steps").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let password = std::fs::read_to_string(server.password_file(dir.path()).unwrap())
            .unwrap()
            .trim()
            .to_owned();
        let mut config: postgres::Config = url.parse().unwrap();
        config.password(password);
        let db = Db::postgres(Box::new(move || config.connect(postgres::NoTls))).unwrap();
        step_by_step(&db);
    }

    /// A file in `collector/migrations/` that is not in [`ALL`] would never run.
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut steps: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.contains(".backfill."))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        steps.sort();
        let listed: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        assert_eq!(steps, listed);
        for (i, m) in ALL.iter().enumerate() {
            assert!(
                m.name.starts_with(&format!("{:04}_", i + 1)),
                "{} is step {}",
                m.name,
                i + 1
            );
        }
    }
}
