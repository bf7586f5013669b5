//! The collector's store: the only module with SQL (STYLE §1), and nothing but SQL and files:
//! it is opened with its own [`StoreOptions`] (the config file is `crate::config`'s business)
//! and takes every decision from the pure functions of [`crate::incident`].
//!
//! Layout: this file (schema, migrations, opening, [`Store::insert_batch`] and the reads of
//! ingest and health), `batch.rs` (one ingest batch: a function per message kind),
//! `incidents.rs` (filing, lifecycle, escalation, health incidents, audit), `reports.rs`
//! (stats, health, the daily report), `auth.rs` (users and sessions), [`db`] (one SQL layer
//! over SQLite and PostgreSQL).
//!
//! # Contract
//! - **Two engines, one schema.** SQLite by default, PostgreSQL by config (`[store.postgres]`,
//!   for several collectors). The SQL is written once in what both accept ([`db`]); the
//!   migrations are the same scripts, with column types mapped for PostgreSQL.
//! - **One writer per process.** A [`Store`] owns one connection; exactly one `Store` per
//!   process writes (the ingest's writer thread, [`crate::ingest`]); readers (the API, the
//!   `stats` command, tests) open their own. On SQLite, WAL lets them read while it writes.
//!   On PostgreSQL several collectors write at once: each batch takes a per-agent advisory
//!   lock, so one agent's events are filed one batch at a time (no incident opened twice).
//! - **Durable before acked.** SQLite runs with `synchronous = FULL`, PostgreSQL with its
//!   default `synchronous_commit = on`: once [`Store::insert_batch`] returns, the batch
//!   survives a power cut, so the ack the collector sends next is a promise it keeps (the
//!   agent deletes its outbox copy on that ack). Batching amortises the flush.
//! - **Idempotent.** Events and counts are keyed by `(agent, seq)` (a re-sent message keeps its
//!   seq), snapshots by event id, and inserted with `INSERT OR IGNORE` (PostgreSQL: `ON
//!   CONFLICT DO NOTHING`): a replay is a no-op that is still reported as committed, so it is
//!   acked again.
//! - **One transaction per batch.** Everything in a batch, dead letters included, commits or
//!   nothing does. Snapshot files are written (and fsynced) *before* the transaction; a failed
//!   commit leaves at worst an unreferenced, content-addressed file that the next try reuses.
//! - **Migrations** are numbered SQL files (`collector/migrations/`, see `migrations.rs`),
//!   recorded in `PRAGMA user_version` (SQLite) or the `ioc_schema` table (PostgreSQL,
//!   migrated under an advisory lock); a database from a newer collector is refused rather
//!   than misread. Timestamps are RFC 3339 text plus
//!   integer milliseconds, payloads are JSON text.
//!
//! - **Incidents in the same transaction.** Each new event is filed under an incident
//!   (`incidents.rs`) before the commit, so an acked event is always in the incident log;
//!   replays are filed nowhere.
//!
//! Snapshots are stored content-addressed: `{snapshot_dir}/ab/cdef…` for the JPEG whose
//! SHA-256 is `abcdef…`, so one frame published twice is stored once.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

mod analytics;
mod auth;
mod batch;
pub mod db;
mod incidents;
mod migrations;
mod reports;

pub use analytics::{AnalyticsVersion, PutAnalytics, VersionBase};
pub use auth::{SessionUser, UserRow};
pub use incidents::{
    ActionError, IncidentEvent, IncidentFilter, LiveCount, Silence, SilenceSpec, SYSTEM,
};
pub use reports::{
    day_name, parse_day, DailyReport, Durations, Health, ReportIncident, Stats, Uptime,
    REPORT_INCIDENTS,
};

use ioc_protocol::{AgentStatus, CameraStatus, Counts, Event, Phase, Timestamp};

use crate::incident::{Change, Policy};
use batch::Batch;
use db::{Db, DbError, Dialect};
use sha2::{Digest, Sha256};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = migrations::ALL.len() as u32;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database {database}: {what}: {source}")]
    Database {
        /// The SQLite file, or the PostgreSQL server and database (never a password).
        database: String,
        /// What the store was doing.
        what: &'static str,
        /// The cause.
        #[source]
        source: DbError,
    },
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the store was doing.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store's configuration cannot be used (PostgreSQL connection settings).
    #[error("store.postgres: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// The database was written by a newer collector.
    #[error(
        "database {database} has schema version {found}, this collector understands up to \
         {supported}: upgrade the collector or point it at another database"
    )]
    TooNew {
        /// The database.
        database: String,
        /// Its `user_version`.
        found: u32,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
}

impl StoreError {
    /// The database cannot be reached now but may be soon: PostgreSQL down, restarting or
    /// refusing connections, or an SQLite lock held past the busy timeout.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database { source, .. } if source.is_unavailable())
    }
}

/// One validated message to store, with when it arrived.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// When the collector received it (Unix milliseconds).
    pub received_at_ms: i64,
    /// What it is.
    pub message: Message,
}

/// What a received message is, after validation.
#[derive(Debug, Clone)]
pub enum Message {
    /// An event, with its payload as received (unknown fields kept).
    Event {
        /// The decoded event (boxed: it is by far the largest variant).
        event: Box<Event>,
        /// The JSON as received.
        json: String,
    },
    /// Line counts, with the payload as received.
    Counts {
        /// The decoded counts.
        counts: Counts,
        /// The JSON as received.
        json: String,
    },
    /// The JPEG of one event.
    Snapshot {
        /// Agent id (from the topic).
        agent: String,
        /// Event id (from the topic).
        event_id: String,
        /// The JPEG bytes.
        jpeg: Vec<u8>,
    },
    /// One part of the MP4 clip of one event.
    ClipPart {
        /// Agent id (from the topic).
        agent: String,
        /// Event id (from the topic).
        event_id: String,
        /// The part's header (checked).
        header: Box<ioc_protocol::ClipPart>,
        /// The part's bytes.
        data: Vec<u8>,
    },
    /// An agent's retained status.
    AgentStatus {
        /// Agent id (from the topic).
        agent: String,
        /// The status.
        status: AgentStatus,
        /// Delivered as the broker's retained copy (on subscribe), not live: it confirms
        /// nothing about now.
        retained: bool,
    },
    /// A camera's retained status.
    CameraStatus {
        /// Agent id (from the topic).
        agent: String,
        /// Camera id (from the topic).
        camera: String,
        /// The status.
        status: CameraStatus,
        /// See [`Message::AgentStatus`].
        retained: bool,
    },
    /// A message that failed validation: kept for people to look at, never retried.
    DeadLetter {
        /// The topic it came on.
        topic: String,
        /// The payload as received.
        payload: Vec<u8>,
        /// Why it was rejected.
        error: String,
    },
}

impl Message {
    /// Marks a status as the broker's retained copy.
    pub fn set_retained(&mut self, r: bool) {
        if let Message::AgentStatus { retained, .. } | Message::CameraStatus { retained, .. } = self
        {
            *retained = r;
        }
    }

    /// The agent it came from (dead letters: unknown).
    fn agent(&self) -> Option<&str> {
        match self {
            Message::Event { event, .. } => Some(&event.agent),
            Message::Counts { counts, .. } => Some(&counts.agent),
            Message::Snapshot { agent, .. }
            | Message::ClipPart { agent, .. }
            | Message::AgentStatus { agent, .. }
            | Message::CameraStatus { agent, .. } => Some(agent),
            Message::DeadLetter { .. } => None,
        }
    }
}

/// What an agent is owed an ack for after a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCommit {
    /// Committed event and counts seqs (new and replayed), in batch order.
    pub seqs: Vec<u64>,
    /// Event ids whose snapshot is committed (new and replayed).
    pub snapshot_ids: Vec<String>,
    /// Clip parts committed (new and replayed), `(event id, part)`.
    pub clip_parts: Vec<(String, u32)>,
}

/// The result of [`Store::insert_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    /// Per agent, what to acknowledge.
    pub agents: BTreeMap<String, AgentCommit>,
    /// New events, counts and snapshots stored.
    pub inserted: u64,
    /// Events, counts and snapshots that were already stored (replays).
    pub duplicates: u64,
    /// Status messages applied (older than the stored one: ignored, still counted).
    pub statuses: u64,
    /// Dead letters stored.
    pub dead_lettered: u64,
    /// Messages that passed validation but not the store's checks, now dead letters (never
    /// acked): `(agent, reason)`; reasons `seq_jump`, `snapshot_mismatch`; `clip_mismatch` (acked:
    /// the same parts again would not help).
    pub rejected: Vec<(String, &'static str)>,
    /// Dead letters whose payload was cut to the stored maximum.
    pub dead_letters_truncated: u64,
    /// Old dead letters removed to stay under the cap.
    pub dead_letters_removed: u64,
    /// Events and counts timed by the receive time (their agent's clock was off).
    pub clock_corrected: u64,
    /// Per agent, seq ranges skipped by this batch: a seq above the agent's previous maximum
    /// that left numbers out (`(agent, first missing, last missing)`). Later resends may still
    /// fill them; [`Store::seq_gaps`] has the current truth.
    pub new_gaps: Vec<(String, u64, u64)>,
    /// Incidents opened, updated or resolved by this batch, as they are after it.
    pub changes: Vec<Change>,
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The event id.
    pub event_id: String,
    /// SHA-256 of the JPEG, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The file.
    pub path: PathBuf,
}

/// A stored clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClip {
    /// The event id.
    pub event_id: String,
    /// The camera.
    pub camera: String,
    /// SHA-256 of the MP4, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// Capture time of its first frame (Unix ms).
    pub start_ms: i64,
    /// The file.
    pub path: PathBuf,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// The topic it came on.
    pub topic: String,
    /// The payload as received, cut to `[ingest] dead_letter_bytes`.
    pub payload: Vec<u8>,
    /// The payload's size as received.
    pub size: u64,
    /// Why it was rejected.
    pub error: String,
    /// When it arrived (Unix milliseconds).
    pub received_at_ms: i64,
}

/// Per-agent totals, for `ioc-collector stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSummary {
    /// Agent id.
    pub agent: String,
    /// Stored events.
    pub events: u64,
    /// Stored counts messages.
    pub counts: u64,
    /// Highest seq seen (events and counts).
    pub max_seq: u64,
    /// Missing seq ranges between 1 and `max_seq`.
    pub gaps: Vec<(u64, u64)>,
    /// Last status state (`online`/`offline`), if any.
    pub state: Option<String>,
}

/// The store (see the module docs for its contract).
pub struct Store {
    db: Db,
    /// Incident keys the last batch filed under (SQLite only; see `insert_batch`).
    known_keys: incidents::KeyCache,
    /// The SQLite file, or the PostgreSQL server and database, for messages.
    name: String,
    snapshot_dir: PathBuf,
    policy: Policy,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.name)
            .field("snapshot_dir", &self.snapshot_dir)
            .finish()
    }
}

fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::Start => "start",
        Phase::Update => "update",
        Phase::End => "end",
        Phase::Instant => "instant",
    }
}

/// An error mapper for database failures on `database` (for code that holds a transaction,
/// which borrows the store).
fn sqlerr(database: &str, what: &'static str) -> impl FnOnce(DbError) -> StoreError {
    let database = database.to_owned();
    move |source| StoreError::Database {
        database,
        what,
        source,
    }
}

/// Names as an SQL list (`'a', 'b'`). Only for our own constant names: no quoting.
fn sql_names(names: &[&str]) -> String {
    debug_assert!(names.iter().all(|n| !n.contains('\'')));
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A serde enum's wire name (`"online"`), without its quotes.
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// SQL integers are signed; seqs above `i64::MAX` are rejected at validation.
fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// What the store opens; made from the config file's `[store]` by `crate::config`, so the
/// store knows SQL and files, not the config file.
#[derive(Clone)]
pub struct StoreOptions {
    /// The database.
    pub backend: Backend,
    /// Directory of content-addressed snapshot JPEGs.
    pub snapshot_dir: PathBuf,
}

/// The database engine and where it is.
// Made once at start-up: the size of the PostgreSQL settings does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Backend {
    /// An SQLite file (created when missing).
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// A PostgreSQL server.
    Postgres {
        /// Connection settings, password included.
        client: postgres::Config,
        /// TLS to the server (required when set).
        tls: Option<rustls::ClientConfig>,
    },
}

impl Store {
    /// Opens the database `options` name (SQLite or PostgreSQL) and its snapshot directory,
    /// and migrates the schema to [`SCHEMA_VERSION`].
    pub fn open_with(options: &StoreOptions) -> Result<Store, StoreError> {
        match &options.backend {
            Backend::Sqlite { path } => Store::open(path, &options.snapshot_dir),
            Backend::Postgres { client, tls } => {
                Store::open_postgres(client.clone(), tls.clone(), &options.snapshot_dir)
            }
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` and the snapshot directory,
    /// and migrates the schema to [`SCHEMA_VERSION`].
    pub fn open(path: &Path, snapshot_dir: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                what: "cannot create database directory",
                source,
            })?;
        }
        create_snapshot_dir(snapshot_dir)?;
        let name = path.display().to_string();
        let sql = |what| sqlerr(&name, what);
        let conn = rusqlite::Connection::open(path).map_err(|e| sql("cannot open")(e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| sql("cannot set busy timeout")(e.into()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| sql("cannot enable WAL")(e.into()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), %mode, "sqlite refused WAL journal mode");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| sql("cannot set pragmas")(e.into()))?;
        let mut store = Store {
            known_keys: Vec::new(),
            db: Db::sqlite(conn),
            name,
            snapshot_dir: snapshot_dir.to_owned(),
            policy: Policy::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database `pg` names (over TLS when `tls` is given: required,
    /// the server's certificate checked), opens the snapshot directory and migrates the schema
    /// to [`SCHEMA_VERSION`]. Several collectors may share the database.
    pub fn open_postgres(
        pg: postgres::Config,
        tls: Option<rustls::ClientConfig>,
        snapshot_dir: &Path,
    ) -> Result<Store, StoreError> {
        create_snapshot_dir(snapshot_dir)?;
        let name = pg_name(&pg);
        let connect: db::Connect = match tls {
            Some(tls) => {
                let mut pg = pg;
                pg.ssl_mode(postgres::config::SslMode::Require);
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                Box::new(move || pg.connect(connector.clone()))
            }
            None => Box::new(move || pg.connect(postgres::NoTls)),
        };
        let db = Db::postgres(connect).map_err(sqlerr(&name, "cannot connect"))?;
        let mut store = Store {
            known_keys: Vec::new(),
            db,
            name,
            snapshot_dir: snapshot_dir.to_owned(),
            policy: Policy::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, what: &'static str) -> impl FnOnce(DbError) -> StoreError {
        sqlerr(&self.name, what)
    }

    /// The engine behind this store.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        migrate_to(&self.db, &self.name, SCHEMA_VERSION)
    }

    /// The database: the SQLite file, or the PostgreSQL server and database.
    pub fn database(&self) -> &str {
        &self.name
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.db
            .schema_version()
            .map_err(self.err("cannot read schema version"))
    }

    /// Where the JPEG with SHA-256 `sha256` (hex) lives: `{snapshot_dir}/ab/cdef…`.
    pub fn snapshot_path(&self, sha256: &str) -> PathBuf {
        let (dir, rest) = sha256.split_at(2.min(sha256.len()));
        self.snapshot_dir.join(dir).join(rest)
    }

    /// Writes `jpeg` to its content address (if not already there) and returns its hash and
    /// path. Written to a temporary name, fsynced, then renamed: a crash never leaves a
    /// partial file under a content address.
    fn write_snapshot_file(&self, jpeg: &[u8]) -> Result<(String, PathBuf), StoreError> {
        let sha = hex::encode(Sha256::digest(jpeg));
        let path = write_content_file(&self.snapshot_dir, &sha, "", jpeg)?;
        Ok((sha, path))
    }

    /// Stores `batch` in one transaction and says what to acknowledge (see the module docs).
    pub fn insert_batch(&mut self, batch: &[Ingested]) -> Result<Committed, StoreError> {
        // Files first, outside the transaction (see the module docs).
        let mut files: Vec<Option<(String, PathBuf)>> = Vec::with_capacity(batch.len());
        for item in batch {
            files.push(match &item.message {
                Message::Snapshot { jpeg, .. } => Some(self.write_snapshot_file(jpeg)?),
                _ => None,
            });
        }
        let name = self.name.clone();
        let sql = |what| sqlerr(&name, what);
        let tx = self.db.begin().map_err(sql("cannot begin transaction"))?;
        if tx.dialect() == Dialect::Postgres {
            // Collectors sharing a database (a shared subscription splits one agent's
            // messages between them) file one agent's events one batch at a time, so two
            // never open the same incident twice. Locks in sorted order: no deadlock.
            let agents: std::collections::BTreeSet<&str> =
                batch.iter().filter_map(|i| i.message.agent()).collect();
            for agent in agents {
                tx.query(
                    "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                    &[&agent],
                )
                .map_err(sql("cannot lock agent"))?;
            }
        }
        // SQLite has one writer, this store: the keys it filed under last time are still
        // right unless it changed an incident since (`act` and `tick` forget them).
        let filing = match tx.dialect() {
            Dialect::Sqlite => incidents::Filing::with_keys(std::mem::take(&mut self.known_keys)),
            Dialect::Postgres => incidents::Filing::default(),
        };
        let mut b = Batch::new(&tx, &name, self.policy, filing);
        for (item, file) in batch.iter().zip(files) {
            let at = item.received_at_ms;
            match &item.message {
                Message::Event { event, json } => b.event(event, json, at)?,
                Message::Counts { counts, json } => b.counts(counts, json, at)?,
                Message::Snapshot {
                    agent,
                    event_id,
                    jpeg,
                } => b.snapshot(agent, event_id, jpeg, file, at)?,
                Message::ClipPart {
                    agent,
                    event_id,
                    header,
                    data,
                } => b.clip_part(agent, event_id, header, data, at, &self.snapshot_dir)?,
                Message::AgentStatus {
                    agent,
                    status,
                    retained,
                } => b.agent_status(agent, status, *retained, at)?,
                Message::CameraStatus {
                    agent,
                    camera,
                    status,
                    retained,
                } => b.camera_status(agent, camera, status, *retained, at)?,
                Message::DeadLetter {
                    topic,
                    payload,
                    error,
                } => b.dead_letter(topic, payload, error, at)?,
            }
        }
        let (out, filing) = b.finish()?;
        tx.commit().map_err(sql("cannot commit batch"))?;
        if self.db.dialect() == Dialect::Sqlite {
            self.known_keys = filing.into_keys();
        }
        Ok(out)
    }

    /// The highest seq stored for `agent` (events and counts), or 0.
    pub fn max_seq(&self, agent: &str) -> Result<u64, StoreError> {
        max_seq(&self.db, agent).map_err(self.err("cannot read max seq"))
    }

    /// Missing seq ranges `(first, last)`, inclusive, between 1 and the highest seq stored
    /// for `agent` (events and counts share the sequence).
    pub fn seq_gaps(&self, agent: &str) -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = self
            .db
            .query(
                "WITH s AS (SELECT seq FROM events WHERE agent = ?1 \
                            UNION SELECT seq FROM counts WHERE agent = ?1), \
                      l AS (SELECT seq, LAG(seq, 1, (SELECT COALESCE(MAX(seq), 0) \
                            FROM seq_floor WHERE agent = ?1)) OVER (ORDER BY seq) AS prev \
                            FROM s) \
                 SELECT prev + 1, seq - 1 FROM l WHERE seq > prev + 1 ORDER BY seq",
                &[&agent],
            )
            .map_err(self.err("cannot find seq gaps"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get::<i64>(0)?.max(0) as u64,
                    r.get::<i64>(1)?.max(0) as u64,
                ))
            })
            .collect::<Result<_, DbError>>()
            .map_err(self.err("cannot find seq gaps"))
    }

    /// Deletes raw events and counts received more than `events_days` ago, snapshots older
    /// than `snapshots_days` and dead letters older than `dead_letters_days` (0: keep), with
    /// snapshot files when no other row uses them. Ages go by receive time, never by the
    /// agent's clock: an event dated 1970 is kept as long as any other. Incidents, their
    /// audit trail and the per-class counts behind reports are kept. Returns the rows
    /// removed: `(events and counts, snapshots, dead letters)`.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        events_days: u64,
        snapshots_days: u64,
        dead_letters_days: u64,
    ) -> Result<(u64, u64, u64), StoreError> {
        let cutoff =
            |days: u64| now_ms - i64::try_from(days).unwrap_or(i64::MAX / 86_400_000) * 86_400_000;
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin retention"))?;
        let mut removed = (0u64, 0u64, 0u64);
        let mut files = Vec::new();
        if events_days > 0 {
            let c = cutoff(events_days);
            tx.execute(
                "INSERT INTO seq_floor (agent, seq) \
                 SELECT agent, MAX(seq) FROM (SELECT agent, seq FROM events \
                 WHERE received_at_ms < ?1 UNION ALL SELECT agent, seq FROM counts \
                 WHERE received_at_ms < ?1) AS old GROUP BY agent \
                 ON CONFLICT (agent) DO UPDATE SET seq = CASE WHEN excluded.seq > seq_floor.seq \
                 THEN excluded.seq ELSE seq_floor.seq END",
                &[&c],
            )
            .map_err(sqlerr(&p, "cannot record retention floor"))?;
            removed.0 += tx
                .execute("DELETE FROM events WHERE received_at_ms < ?1", &[&c])
                .map_err(sqlerr(&p, "cannot delete old events"))?;
            removed.0 += tx
                .execute("DELETE FROM counts WHERE received_at_ms < ?1", &[&c])
                .map_err(sqlerr(&p, "cannot delete old counts"))?;
        }
        if snapshots_days > 0 {
            let c = cutoff(snapshots_days);
            let paths: Vec<String> = tx
                .query(
                    "SELECT DISTINCT path FROM snapshots WHERE received_at_ms < ?1",
                    &[&c],
                )
                .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
                .map_err(sqlerr(&p, "cannot list old snapshots"))?;
            removed.1 = tx
                .execute("DELETE FROM snapshots WHERE received_at_ms < ?1", &[&c])
                .map_err(sqlerr(&p, "cannot delete old snapshots"))?;
            for path in paths {
                let used: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM snapshots WHERE path = ?1)",
                        &[&path],
                    )
                    .and_then(|r| r.get(0))
                    .map_err(sqlerr(&p, "cannot check snapshot use"))?;
                if !used {
                    files.push(PathBuf::from(path));
                }
            }
            // Clips are pictures too: they go with the snapshots.
            let paths: Vec<String> = tx
                .query(
                    "SELECT DISTINCT path FROM clips WHERE received_at_ms < ?1",
                    &[&c],
                )
                .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
                .map_err(sqlerr(&p, "cannot list old clips"))?;
            removed.1 += tx
                .execute("DELETE FROM clips WHERE received_at_ms < ?1", &[&c])
                .map_err(sqlerr(&p, "cannot delete old clips"))?;
            for path in paths {
                let used: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM clips WHERE path = ?1)",
                        &[&path],
                    )
                    .and_then(|r| r.get(0))
                    .map_err(sqlerr(&p, "cannot check clip use"))?;
                if !used {
                    files.push(PathBuf::from(path));
                }
            }
        }
        // Parts of a clip that never came whole (its agent dropped the rest) go after a day.
        tx.execute(
            "DELETE FROM clip_parts WHERE received_at_ms < ?1",
            &[&(now_ms - 86_400_000)],
        )
        .map_err(sqlerr(&p, "cannot delete stale clip parts"))?;
        if dead_letters_days > 0 {
            removed.2 = tx
                .execute(
                    "DELETE FROM dead_letters WHERE received_at_ms < ?1",
                    &[&cutoff(dead_letters_days)],
                )
                .map_err(sqlerr(&p, "cannot delete old dead letters"))?;
        }
        tx.commit().map_err(sqlerr(&p, "cannot commit retention"))?;
        // Files after the commit: a crash in between leaves an orphan file, never a row
        // pointing at nothing.
        for f in files {
            if let Err(e) = fs::remove_file(&f) {
                tracing::warn!(path = %f.display(), error = %e, "cannot remove old snapshot");
            }
        }
        Ok(removed)
    }

    /// How many events are stored for `agent`.
    pub fn count_events(&self, agent: &str) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM events WHERE agent = ?1", agent)
    }

    /// How many counts messages are stored for `agent`.
    pub fn count_counts(&self, agent: &str) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM counts WHERE agent = ?1", agent)
    }

    /// How many distinct seqs (events and counts) are stored for `agent`.
    pub fn distinct_seqs(&self, agent: &str) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM (SELECT seq FROM events WHERE agent = ?1 \
             UNION SELECT seq FROM counts WHERE agent = ?1) AS s",
            agent,
        )
    }

    /// How many distinct event (incident) ids are stored for `agent`.
    pub fn distinct_event_ids(&self, agent: &str) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(DISTINCT event_id) FROM events WHERE agent = ?1",
            agent,
        )
    }

    fn count(&self, sql: &str, agent: &str) -> Result<u64, StoreError> {
        self.db
            .query_one(sql, &[&agent])
            .and_then(|r| r.get::<i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(self.err("cannot count"))
    }

    /// Every agent with stored events, counts or status, sorted.
    pub fn agents(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT agent FROM events UNION SELECT agent FROM counts \
                 UNION SELECT agent FROM agents ORDER BY agent",
                &[],
            )
            .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(self.err("cannot list agents"))
    }

    /// Totals and gaps per agent.
    pub fn summary(&self) -> Result<Vec<AgentSummary>, StoreError> {
        let mut out = Vec::new();
        for agent in self.agents()? {
            let state = self
                .db
                .query_opt("SELECT state FROM agents WHERE agent = ?1", &[&agent])
                .and_then(|r| r.map(|r| r.get(0)).transpose())
                .map_err(self.err("cannot read agent status"))?;
            out.push(AgentSummary {
                events: self.count_events(&agent)?,
                counts: self.count_counts(&agent)?,
                max_seq: self.max_seq(&agent)?,
                gaps: self.seq_gaps(&agent)?,
                state,
                agent,
            });
        }
        Ok(out)
    }

    /// The stored snapshot of `agent`'s event `event_id`, unless the event declares another
    /// JPEG (a snapshot that arrived before its event is checked here).
    pub fn snapshot(
        &self,
        agent: &str,
        event_id: &str,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.db
            .query_opt(
                "SELECT s.event_id, s.sha256, s.size, s.path FROM snapshots s \
                 WHERE s.agent = ?1 AND s.event_id = ?2 AND NOT EXISTS (SELECT 1 FROM events e \
                 WHERE e.agent = s.agent AND e.event_id = s.event_id \
                 AND e.snapshot_sha256 IS NOT NULL AND e.snapshot_sha256 <> s.sha256)",
                &[&agent, &event_id],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(StoredSnapshot {
                        event_id: r.get(0)?,
                        sha256: r.get(1)?,
                        size: r.get::<i64>(2)?.max(0) as u64,
                        path: PathBuf::from(r.get::<String>(3)?),
                    })
                })
                .transpose()
            })
            .map_err(self.err("cannot read snapshot"))
    }

    /// The clip of `agent`'s event `event_id`, if it has arrived whole.
    pub fn clip(&self, agent: &str, event_id: &str) -> Result<Option<StoredClip>, StoreError> {
        self.db
            .query_opt(
                "SELECT event_id, camera, sha256, size, duration_ms, start_ms, path FROM clips                  WHERE agent = ?1 AND event_id = ?2",
                &[&agent, &event_id],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(StoredClip {
                        event_id: r.get(0)?,
                        camera: r.get(1)?,
                        sha256: r.get(2)?,
                        size: r.get::<i64>(3)?.max(0) as u64,
                        duration_ms: r.get(4)?,
                        start_ms: r.get(5)?,
                        path: PathBuf::from(r.get::<String>(6)?),
                    })
                })
                .transpose()
            })
            .map_err(self.err("cannot read clip"))
    }

    /// How many dead letters are stored.
    pub fn count_dead_letters(&self) -> Result<u64, StoreError> {
        self.db
            .query_one("SELECT COUNT(*) FROM dead_letters", &[])
            .and_then(|r| r.get::<i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(self.err("cannot count dead letters"))
    }

    /// The most recent `limit` dead letters, newest first.
    pub fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.db
            .query(
                "SELECT id, topic, payload, error, received_at_ms, size FROM dead_letters \
                 ORDER BY id DESC LIMIT ?1",
                &[&limit],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(DeadLetter {
                            id: r.get(0)?,
                            topic: r.get(1)?,
                            payload: r.get(2)?,
                            error: r.get(3)?,
                            received_at_ms: r.get(4)?,
                            size: r.get::<Option<i64>>(5)?.unwrap_or(0).max(0) as u64,
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot read dead letters"))
    }

    /// An agent's last status: `(state, version)`.
    pub fn agent_state(&self, agent: &str) -> Result<Option<(String, String)>, StoreError> {
        self.db
            .query_opt(
                "SELECT state, version FROM agents WHERE agent = ?1",
                &[&agent],
            )
            .and_then(|r| r.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose())
            .map_err(self.err("cannot read agent status"))
    }

    /// A camera's last status: `(state, fps)`.
    pub fn camera_state(
        &self,
        agent: &str,
        camera: &str,
    ) -> Result<Option<(String, Option<f64>)>, StoreError> {
        self.db
            .query_opt(
                "SELECT state, fps FROM cameras WHERE agent = ?1 AND camera = ?2",
                &[&agent, &camera],
            )
            .and_then(|r| r.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose())
            .map_err(self.err("cannot read camera status"))
    }
}

impl Committed {
    fn agent(&mut self, agent: &str) -> &mut AgentCommit {
        // Look up before inserting: a batch is mostly one agent, and `entry` would allocate
        // the key for every message.
        if !self.agents.contains_key(agent) {
            self.agents.insert(agent.to_owned(), AgentCommit::default());
        }
        self.agents.get_mut(agent).expect("inserted above")
    }

    fn count(&mut self, changed: u64) {
        if changed == 0 {
            self.duplicates += 1;
        } else {
            self.inserted += 1;
        }
    }
}

fn max_seq(db: &Db, agent: &str) -> Result<u64, DbError> {
    db.query_one(
        "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM events WHERE agent = ?1 \
         UNION ALL SELECT MAX(seq) FROM counts WHERE agent = ?1) AS s",
        &[&agent],
    )?
    .get::<Option<i64>>(0)
    .map(|m| m.unwrap_or(0).max(0) as u64)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

fn create_snapshot_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        path: dir.to_owned(),
        what: "cannot create snapshot directory",
        source,
    })
}

/// `postgresql://user@host:port/dbname`, for messages: never the password.
fn pg_name(c: &postgres::Config) -> String {
    use postgres::config::Host;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Migrates `db` to version `to` in one transaction under the migration lock (several
/// collectors may start together on one PostgreSQL: one migrates, the others then find
/// nothing to do). A database newer than this collector is refused.
fn migrate_to(db: &Db, name: &str, to: u32) -> Result<(), StoreError> {
    let sql = |what| sqlerr(name, what);
    let tx = db.begin().map_err(sql("cannot begin migration"))?;
    tx.lock_for_migration()
        .map_err(sql("cannot prepare migration"))?;
    let found = tx
        .schema_version()
        .map_err(sql("cannot read schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            database: name.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    migrations::apply(&tx, name, found, to).map_err(sql("cannot migrate schema"))?;
    tx.commit().map_err(sql("cannot commit migration"))
}

/// Writes `bytes` (whose SHA-256 is `sha`) to its content address under `root`,
/// `{root}/ab/cdef…[.ext]`, unless already there, and returns the path. Written to a
/// temporary name, fsynced, then renamed: a crash never leaves a partial file under a
/// content address.
fn write_content_file(
    root: &Path,
    sha: &str,
    ext: &str,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    let (dir, rest) = sha.split_at(2.min(sha.len()));
    let dir = root.join(dir);
    let path = if ext.is_empty() {
        dir.join(rest)
    } else {
        dir.join(format!("{rest}.{ext}"))
    };
    let io = |path: &Path, what| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, what, source }
    };
    if let Ok(m) = fs::metadata(&path) {
        if m.len() == bytes.len() as u64 {
            return Ok(path);
        }
    }
    fs::create_dir_all(&dir).map_err(io(&dir, "cannot create snapshot directory"))?;
    let tmp = dir.join(format!(".{rest}.tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp, "cannot create snapshot file"))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp, "cannot write snapshot file"))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path, "cannot rename snapshot file"))?;
    // The rename itself must survive a power cut before the row that points at it.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ioc_protocol::{parse_counts, parse_event};

    pub(crate) fn event_json(agent: &str, seq: u64) -> String {
        format!(
            r#"{{"schema":"ioc.event/1","id":"{agent}-{seq}","seq":{seq},"phase":"instant",
            "agent":"{agent}","camera":"gate","kind":"line_crossing","severity":"info",
            "rule":"count-in","observed_at":"2024-05-01T12:00:00.000Z","future_field":1}}"#
        )
    }

    fn ev(agent: &str, seq: u64) -> Ingested {
        let json = event_json(agent, seq);
        Ingested {
            received_at_ms: 1,
            message: Message::Event {
                event: Box::new(parse_event(json.as_bytes()).unwrap()),
                json,
            },
        }
    }

    fn counts(agent: &str, seq: u64) -> Ingested {
        let json = format!(
            r#"{{"schema":"ioc.counts/1","seq":{seq},"agent":"{agent}","camera":"road",
            "line":"stop","interval_start":"2024-05-01T12:00:00Z",
            "interval_end":"2024-05-01T12:01:00Z","counts":[]}}"#
        );
        Ingested {
            received_at_ms: 1,
            message: Message::Counts {
                counts: parse_counts(json.as_bytes()).unwrap(),
                json,
            },
        }
    }

    fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("db/ioc.db"), &dir.path().join("snaps")).unwrap()
    }

    /// The parts of `mp4` as the agent sends them (`chunk` bytes each), `sha` declared.
    fn clip_parts(event_id: &str, mp4: &[u8], chunk: usize, sha: &str) -> Vec<Ingested> {
        let start = Timestamp::from_unix(1_700_000_000, 0);
        ioc_protocol::split_clip("road", mp4, sha, chunk, 9.5, start)
            .into_iter()
            .map(|(header, data)| Ingested {
                received_at_ms: 1,
                message: Message::ClipPart {
                    agent: "a1".into(),
                    event_id: event_id.into(),
                    header: Box::new(header),
                    data: data.to_vec(),
                },
            })
            .collect()
    }

    #[test]
    fn clip_parts_in_any_order_make_one_checked_clip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        let mp4: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let sha = hex::encode(Sha256::digest(&mp4));
        let mut parts = clip_parts("a1-1", &mp4, 4096, &sha);
        assert_eq!(parts.len(), 3);
        parts.reverse();
        // The first two (last parts first): stored, acked, not a clip yet.
        let c = s.insert_batch(&parts[..2]).unwrap();
        assert_eq!(c.inserted, 2);
        assert_eq!(
            c.agents["a1"].clip_parts,
            [("a1-1".to_owned(), 2), ("a1-1".to_owned(), 1)]
        );
        assert!(s.clip("a1", "a1-1").unwrap().is_none());
        // A replay changes nothing; the last part completes it.
        let c = s.insert_batch(&parts[..1]).unwrap();
        assert_eq!((c.inserted, c.duplicates), (0, 1));
        s.insert_batch(&parts[2..]).unwrap();
        let clip = s.clip("a1", "a1-1").unwrap().expect("a whole clip");
        assert_eq!((clip.size, clip.duration_ms), (10_000, 9_500));
        assert_eq!(clip.sha256, sha);
        assert_eq!(std::fs::read(&clip.path).unwrap(), mp4);
        assert!(clip.path.starts_with(dir.path().join("snaps/clips")));
        // Parts of a stored clip are acked again and stored no more.
        let c = s.insert_batch(&parts).unwrap();
        assert_eq!((c.inserted, c.duplicates), (0, 3));
        assert_eq!(c.agents["a1"].clip_parts.len(), 3);
        let left: i64 =
            s.db.query_one("SELECT COUNT(*) FROM clip_parts", &[])
                .and_then(|r| r.get(0))
                .unwrap();
        assert_eq!(left, 0);

        // Parts that do not add up to what they declare: a dead letter, no clip, acked
        // (resending the same bytes would not help).
        let bad = clip_parts("a1-2", &mp4, 4096, &"0".repeat(64));
        let c = s.insert_batch(&bad).unwrap();
        assert_eq!(c.rejected, [("a1".to_owned(), "clip_mismatch")]);
        assert_eq!(c.agents["a1"].clip_parts.len(), 3);
        assert!(s.clip("a1", "a1-2").unwrap().is_none());
        assert_eq!(s.count_dead_letters().unwrap(), 1);

        // Retention takes clips with the snapshots, files too.
        let (_, removed, _) = s.apply_retention(10 * 86_400_000, 0, 1, 0).unwrap();
        assert_eq!(removed, 1);
        assert!(s.clip("a1", "a1-1").unwrap().is_none());
        assert!(!clip.path.exists());
    }

    #[test]
    fn clip_parts_are_bounded_per_agent_and_checked_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        s.set_policy(Policy {
            pending_clip_bytes_per_agent: 20_000,
            ..Policy::default()
        });
        let mp4: Vec<u8> = (0..12_000u32).map(|i| (i % 241) as u8).collect();
        let sha = hex::encode(Sha256::digest(&mp4));
        // A clip of 12,000 bytes missing its last part: its declared size is reserved.
        let a = clip_parts("a1-1", &mp4, 4096, &sha);
        let b = clip_parts("a1-2", &mp4, 4096, &sha);
        let c = s.insert_batch(&a[..2]).unwrap();
        assert_eq!(c.agents["a1"].clip_parts.len(), 2);
        // A replay (the outbox sends again what was not acked) is acked, not refused.
        let c = s.insert_batch(&a[1..2]).unwrap();
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        assert_eq!(c.agents["a1"].clip_parts, [("a1-1".to_owned(), 1)]);
        // A second one would pass the 20,000-byte budget: refused, not acked (the agent
        // sends it again later), not stored.
        let c = s.insert_batch(&b[..2]).unwrap();
        assert!(!c.agents.contains_key("a1") || c.agents["a1"].clip_parts.is_empty());
        assert_eq!(c.rejected.len(), 2);
        assert!(
            c.rejected.iter().all(|r| r.1 == "clip_budget"),
            "{:?}",
            c.rejected
        );
        // Completing a clip frees its room; another agent was never limited by this one.
        s.insert_batch(&a[2..]).unwrap();
        assert!(s.clip("a1", "a1-1").unwrap().is_some());
        let c = s.insert_batch(&b).unwrap();
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        assert!(s.clip("a1", "a1-2").unwrap().is_some());

        // Parts whose header declares another size than they carry: refused from the sums,
        // before any part is read.
        let mut forged = clip_parts("a1-3", &mp4, 4096, &sha);
        for p in &mut forged {
            if let Message::ClipPart { header, .. } = &mut p.message {
                header.size = 30_000_000;
            }
        }
        s.set_policy(Policy::default());
        let c = s.insert_batch(&forged).unwrap();
        assert_eq!(c.rejected, [("a1".to_owned(), "clip_mismatch")]);
        assert!(s.clip("a1", "a1-3").unwrap().is_none());
        let letters = s.dead_letters(10).unwrap();
        let text = &letters
            .iter()
            .find(|d| d.error.starts_with("clip_mismatch"))
            .unwrap()
            .error;
        assert!(
            text.contains("12000 bytes") && text.contains("30000000"),
            "{text}"
        );
        // Parts carrying more than their clip declares: refused part by part.
        let mut stuffed = clip_parts("a1-4", &mp4, 4096, &sha);
        for p in &mut stuffed {
            if let Message::ClipPart { header, .. } = &mut p.message {
                header.size = 5000;
            }
        }
        let c = s.insert_batch(&stuffed).unwrap();
        assert!(
            c.rejected.iter().any(|r| r.1 == "clip_mismatch"),
            "{:?}",
            c.rejected
        );
        let kept: i64 =
            s.db.query_one(
                "SELECT COUNT(*) FROM clip_parts WHERE event_id = 'a1-4'",
                &[],
            )
            .and_then(|r| r.get(0))
            .unwrap();
        assert!(kept <= 1, "{kept}");
    }

    #[test]
    fn insert_is_idempotent_and_acks_replays() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        let batch: Vec<_> = (1..=5)
            .map(|i| ev("a1", i))
            .chain([counts("a1", 6)])
            .collect();
        let c = s.insert_batch(&batch).unwrap();
        assert_eq!((c.inserted, c.duplicates), (6, 0));
        assert_eq!(c.agents["a1"].seqs, vec![1, 2, 3, 4, 5, 6]);
        let c = s.insert_batch(&batch).unwrap();
        assert_eq!((c.inserted, c.duplicates), (0, 6));
        assert_eq!(
            c.agents["a1"].seqs,
            vec![1, 2, 3, 4, 5, 6],
            "replays are acked again"
        );
        assert!(c.new_gaps.is_empty());
        assert_eq!(s.count_events("a1").unwrap(), 5);
        assert_eq!(s.count_counts("a1").unwrap(), 1);
        assert_eq!(s.distinct_seqs("a1").unwrap(), 6);
        assert_eq!(s.distinct_event_ids("a1").unwrap(), 5);
        assert_eq!(s.count_events("other").unwrap(), 0);
        // The payload is kept as received, unknown fields included.
        let payload: String =
            s.db.query_one("SELECT payload FROM events WHERE seq = 1", &[])
                .and_then(|r| r.get(0))
                .unwrap();
        assert!(payload.contains("future_field"));
    }

    #[test]
    fn gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        assert_eq!(s.seq_gaps("a1").unwrap(), vec![]);
        let c = s
            .insert_batch(&[ev("a1", 3), ev("a1", 4), counts("a1", 7), ev("b", 1)])
            .unwrap();
        assert_eq!(
            c.new_gaps,
            vec![("a1".to_string(), 1, 2), ("a1".to_string(), 5, 6)]
        );
        assert_eq!(s.seq_gaps("a1").unwrap(), vec![(1, 2), (5, 6)]);
        assert_eq!(s.seq_gaps("b").unwrap(), vec![]);
        // A late resend fills a gap without opening a new one.
        let c = s.insert_batch(&[ev("a1", 5), ev("a1", 10)]).unwrap();
        assert_eq!(c.new_gaps, vec![("a1".to_string(), 8, 9)]);
        assert_eq!(s.seq_gaps("a1").unwrap(), vec![(1, 2), (6, 6), (8, 9)]);
        assert_eq!(s.max_seq("a1").unwrap(), 10);
        let sum = s.summary().unwrap();
        assert_eq!(sum.len(), 2);
        assert_eq!(sum[0].agent, "a1");
        assert_eq!((sum[0].events, sum[0].counts, sum[0].max_seq), (4, 1, 10));
        assert_eq!(sum[0].gaps, vec![(1, 2), (6, 6), (8, 9)]);
    }

    #[test]
    fn snapshots_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        let jpeg = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec();
        let snap = |id: &str| Ingested {
            received_at_ms: 1,
            message: Message::Snapshot {
                agent: "a1".into(),
                event_id: id.into(),
                jpeg: jpeg.clone(),
            },
        };
        let c = s.insert_batch(&[snap("a1-1"), snap("a1-2")]).unwrap();
        assert_eq!(c.inserted, 2);
        assert_eq!(c.agents["a1"].snapshot_ids, vec!["a1-1", "a1-2"]);
        assert!(c.agents["a1"].seqs.is_empty());
        let c = s.insert_batch(&[snap("a1-1")]).unwrap();
        assert_eq!((c.inserted, c.duplicates), (0, 1));
        let a = s.snapshot("a1", "a1-1").unwrap().unwrap();
        let b = s.snapshot("a1", "a1-2").unwrap().unwrap();
        let sha = hex::encode(Sha256::digest(&jpeg));
        assert_eq!(a.sha256, sha);
        assert_eq!(a.path, b.path, "one file for identical bytes");
        assert_eq!(
            a.path,
            dir.path().join("snaps").join(&sha[..2]).join(&sha[2..])
        );
        assert_eq!(fs::read(&a.path).unwrap(), jpeg);
        assert_eq!(a.size, jpeg.len() as u64);
        assert!(s.snapshot("a1", "a1-3").unwrap().is_none());
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(a.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn status_keeps_the_newest_and_dead_letters_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir);
        let st = |state, at: &str| Ingested {
            received_at_ms: 1,
            message: Message::AgentStatus {
                agent: "a1".into(),
                status: AgentStatus::new(state, "0.1.0", vec![], Timestamp::parse(at).unwrap()),
                retained: false,
            },
        };
        use ioc_protocol::{AgentState, CameraState};
        s.insert_batch(&[st(AgentState::Online, "2024-05-01T12:00:00Z")])
            .unwrap();
        // The broker's order wins, not the agent's clock: a Last Will is dated when the agent
        // started, before the `online` it sent since.
        let c = s
            .insert_batch(&[
                st(AgentState::Online, "2024-05-01T13:00:00Z"),
                st(AgentState::Offline, "2024-05-01T12:30:00Z"),
            ])
            .unwrap();
        assert_eq!(c.statuses, 2);
        assert_eq!(s.agent_state("a1").unwrap().unwrap().0, "offline");
        let mut cs = CameraStatus::new(
            CameraState::Streaming,
            Timestamp::parse("2024-05-01T12:00:00Z").unwrap(),
        );
        cs.fps = Some(5.0);
        cs.detect_fps = Some(4.5);
        cs.target_fps = Some(5.0);
        cs.dropped = Some(7);
        cs.detect_latency_ms = Some(120.0);
        s.insert_batch(&[Ingested {
            received_at_ms: 1,
            message: Message::CameraStatus {
                agent: "a1".into(),
                camera: "gate".into(),
                status: cs,
                retained: false,
            },
        }])
        .unwrap();
        assert_eq!(
            s.camera_state("a1", "gate").unwrap(),
            Some(("streaming".into(), Some(5.0)))
        );
        // The agent's detection figures reach the health page.
        let h = s.health(1).unwrap();
        let cam = h.cameras.iter().find(|c| c.camera == "gate").unwrap();
        assert_eq!(
            (
                cam.detect_fps,
                cam.target_fps,
                cam.dropped,
                cam.detect_latency_ms
            ),
            (Some(4.5), Some(5.0), Some(7), Some(120.0))
        );
        let dl = Ingested {
            received_at_ms: 7,
            message: Message::DeadLetter {
                topic: "ioc/v1/agents/a1/events".into(),
                payload: b"\x00{not json".to_vec(),
                error: "malformed JSON".into(),
            },
        };
        let c = s.insert_batch(&[dl, ev("a1", 1)]).unwrap();
        assert_eq!((c.dead_lettered, c.inserted), (1, 1));
        assert_eq!(s.count_dead_letters().unwrap(), 1);
        let d = &s.dead_letters(10).unwrap()[0];
        assert_eq!(d.payload, b"\x00{not json");
        assert_eq!((d.error.as_str(), d.received_at_ms), ("malformed JSON", 7));
    }

    #[test]
    fn migration_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(&dir);
            assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
            s.insert_batch(&[ev("a1", 1)]).unwrap();
        }
        // Reopening is a no-op migration and keeps the data.
        let s = open(&dir);
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.count_events("a1").unwrap(), 1);
        let mode: String =
            s.db.query_one("PRAGMA journal_mode", &[])
                .and_then(|r| r.get(0))
                .unwrap();
        assert_eq!(mode, "wal");
        // A second connection (a reader, like `stats`) can open it at the same time.
        let reader = open(&dir);
        assert_eq!(reader.count_events("a1").unwrap(), 1);
        drop((s, reader));
        // A database from a newer collector is refused.
        let conn = rusqlite::Connection::open(dir.path().join("db/ioc.db")).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
        drop(conn);
        let err =
            Store::open(&dir.path().join("db/ioc.db"), &dir.path().join("snaps")).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade the collector"));
    }
}
