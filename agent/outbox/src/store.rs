//! The durable outbox: every message the agent publishes is first written here, and stays
//! until the collector acknowledges that it committed it.
//!
//! # Delivery guarantee
//! **At least once, in order, per agent, up to the size bound.** An `append_*` call that
//! returned `Ok` has been committed to SQLite with `synchronous=FULL` in WAL mode: the entry
//! survives a crash, `kill -9` or power loss of the agent from that moment on. An entry leaves
//! the outbox only when
//! - an [`Ack`] from the collector names it (its `seq`, for snapshots its event id, for a
//!   clip's parts the event id and part number), or
//! - the outbox is full and the [full policy](#when-full) drops it, which is counted in
//!   [`Outbox::dropped`], persisted, and logged with `tracing::warn!` (never silent).
//!
//! The publisher may send an entry more than once (after a timeout, after a reconnect, after a
//! restart); the collector stores by `(agent, seq)` / event id, so replays are no-ops.
//!
//! # Sequence numbers
//! Events and counts share one per-agent sequence (see `ioc_protocol::event`). The next seq is
//! kept in the `meta` table and advanced in the same transaction as the insert, so a seq is
//! never reused, also not after its entry was acknowledged and deleted, and the seqs of the
//! entries an agent appended are contiguous (1, 2, 3, ...). Snapshots carry no seq; they are
//! acknowledged by their event id (`Ack::ids`).
//!
//! # When full
//! The outbox holds at most [`OutboxConfig::max_bytes`] of payload. Appending an entry that
//! does not fit first drops the **oldest clips** (all parts of each), then the **oldest
//! snapshots**, then (for events and counts only) the **oldest events/counts**. Pictures never
//! push out events, and a clip never pushes out a snapshot: when nothing less important is
//! left to drop, the new clip or snapshot itself is dropped (counted and logged) and
//! `append_clip` / `append_snapshot` return `Ok(false)`. An entry larger than `max_bytes` on
//! its own is refused with [`OutboxError::TooLarge`].
//!
//! # Format
//! Format 2 added clips (kind `clip` and the `part` column); a format-1 file is rebuilt in
//! place when opened, keeping its entries.
//!
//! # Locking and latency
//! One SQLite connection behind a `std::sync::Mutex`. Every call does blocking disk I/O (an
//! append costs an fsync): call it from a blocking thread or `tokio::task::spawn_blocking`,
//! never directly on an async worker. [`Outbox`] is a cheap `Clone` handle.
//!
//! Which entries were sent when ([`Outbox::mark_sent`]) is kept in memory only: after a restart
//! everything in the outbox counts as unsent and is sent again, which is what the guarantee
//! needs, and it saves an fsync per publish.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ioc_protocol::{Ack, Counts, Event, ProtocolError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Default size bound: 256 MiB of payload.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// How the outbox is sized.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Most payload bytes kept (events, counts and snapshots together); default 256 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What an outbox entry is; decides its topic and how it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An `ioc.event/1` message (`.../events`), acked by seq.
    Event,
    /// An `ioc.counts/1` message (`.../counts`), acked by seq.
    Counts,
    /// A JPEG (`.../snapshots/{event_id}`), acked by event id.
    Snapshot,
    /// One part of an MP4 clip (`.../clips/{event_id}`), acked by event id and part.
    Clip,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Event => "event",
            EntryKind::Counts => "counts",
            EntryKind::Snapshot => "snapshot",
            EntryKind::Clip => "clip",
        }
    }

    fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "event" => EntryKind::Event,
            "counts" => EntryKind::Counts,
            "snapshot" => EntryKind::Snapshot,
            "clip" => EntryKind::Clip,
            _ => return None,
        })
    }
}

/// When and how often an entry was handed to the MQTT client (this process only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentInfo {
    /// The last time.
    pub at: Instant,
    /// How many times in this process.
    pub attempts: u32,
    /// The publisher's connection counter when it was last sent (after a reconnect, entries
    /// sent on an older connection count as unsent).
    pub connection: u64,
}

/// One unacknowledged entry, as returned by [`Outbox::pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the outbox: append order, unique, never reused.
    pub id: i64,
    /// What it is.
    pub kind: EntryKind,
    /// The message seq (events and counts).
    pub seq: Option<u64>,
    /// The incident id (events, snapshots and clips).
    pub event_id: Option<String>,
    /// The part number (clips).
    pub part: Option<u32>,
    /// The bytes to publish (JSON, JPEG for snapshots, a clip part's wire form for clips).
    pub payload: Vec<u8>,
    /// Whether and when it was sent in this process (see [`Outbox::mark_sent`]).
    pub sent: Option<SentInfo>,
}

/// Entries dropped by the full policy since the outbox file was created (persisted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events dropped.
    pub events: u64,
    /// Counts messages dropped.
    pub counts: u64,
    /// Snapshots dropped.
    pub snapshots: u64,
    /// Clips dropped (each with all its parts).
    pub clips: u64,
}

impl Dropped {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.events + self.counts + self.snapshots + self.clips
    }
}

/// What an [`Outbox::ack`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Event and counts entries deleted.
    pub messages: u64,
    /// Snapshot entries deleted.
    pub snapshots: u64,
    /// Clip parts deleted.
    pub clip_parts: u64,
}

/// Why an outbox operation failed. Every variant names the outbox file.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The file could not be opened or set up (missing directory, not a database, corrupt,
    /// permissions).
    #[error("cannot open outbox {path:?}: {source} (hint: check that the directory exists and is writable, and that the file is an ioc outbox)")]
    Open {
        /// The outbox file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A read or write failed (disk full, I/O error, corruption).
    #[error("outbox {path:?}: {op} failed: {source}{}", if is_disk_full(source) { " (disk full: free space or lower outbox.max_bytes)" } else { "" })]
    Sqlite {
        /// The outbox file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The entry alone is larger than the outbox may hold.
    #[error("outbox {path:?}: {kind:?} of {size} bytes exceeds max_bytes {max_bytes}")]
    TooLarge {
        /// The outbox file.
        path: PathBuf,
        /// What was appended.
        kind: EntryKind,
        /// Its size.
        size: u64,
        /// The bound.
        max_bytes: u64,
    },
    /// The payload failed validation or encoding.
    #[error("outbox {path:?}: refusing to store an invalid message: {source}")]
    Invalid {
        /// The outbox file.
        path: PathBuf,
        /// The protocol's error.
        #[source]
        source: ProtocolError,
    },
    /// A snapshot's event id cannot name a topic.
    #[error("outbox {path:?}: snapshot for bad event id: {source}")]
    BadEventId {
        /// The outbox file.
        path: PathBuf,
        /// The id problem.
        #[source]
        source: ioc_protocol::IdError,
    },
    /// The message built for a seq carries another seq.
    #[error("outbox {path:?}: message built for seq {expected} carries seq {found}")]
    SeqMismatch {
        /// The outbox file.
        path: PathBuf,
        /// The seq handed to the builder.
        expected: u64,
        /// The seq in the message.
        found: u64,
    },
    /// The file holds data this version does not understand.
    #[error("outbox {path:?}: {what}")]
    Corrupt {
        /// The outbox file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

impl OutboxError {
    /// Whether the error is the disk (or SQLite's page limit) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            OutboxError::Open { source, .. } | OutboxError::Sqlite { source, .. } => {
                is_disk_full(source)
            }
            _ => false,
        }
    }
}

fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
}

/// Result alias of this module.
pub type Result<T, E = OutboxError> = std::result::Result<T, E>;

/// The durable outbox (a cheap `Clone` handle; see the module docs).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish()
    }
}

struct Inner {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    /// Sum of `size` over all rows (kept in step with the table).
    bytes: u64,
    /// Number of rows.
    len: u64,
    dropped: Dropped,
    sent: HashMap<i64, SentInfo>,
    /// Added to every append's commit: a slow disk, for tests only.
    slow_disk: std::time::Duration,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'counts', 'snapshot', 'clip')),
    seq INTEGER UNIQUE,
    event_id TEXT,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    part INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, id);
CREATE INDEX IF NOT EXISTS entries_event_id ON entries (event_id);
INSERT OR IGNORE INTO meta (key, value) VALUES ('format', 2);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_events', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_counts', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_snapshots', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_clips', 0);
";

/// Format 1 to 2: the kind check cannot be altered in SQLite, so the table is rebuilt (ids,
/// and the counter that keeps them from being reused, carried over).
const FORMAT_2: &str = "
CREATE TABLE entries_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'counts', 'snapshot', 'clip')),
    seq INTEGER UNIQUE,
    event_id TEXT,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    part INTEGER
) STRICT;
INSERT INTO entries_v2 (id, kind, seq, event_id, payload, size, created_ms)
    SELECT id, kind, seq, event_id, payload, size, created_ms FROM entries;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'entries_v2', seq FROM sqlite_sequence WHERE name = 'entries';
DROP TABLE entries;
ALTER TABLE entries_v2 RENAME TO entries;
CREATE INDEX entries_kind ON entries (kind, id);
CREATE INDEX entries_event_id ON entries (event_id);
UPDATE meta SET value = 2 WHERE key = 'format';
";

impl Outbox {
    /// Opens (creating if needed) the outbox at `path`. The directory must exist.
    pub fn open(path: impl AsRef<Path>, config: OutboxConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| OutboxError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        // A writer may hold the lock briefly (e.g. a test reading while the loadgen writes).
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OutboxError::Corrupt {
                path,
                what: format!("cannot switch to WAL journal mode (got {mode:?})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        let format: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .map_err(open_err)?;
        match format {
            1 => conn
                .execute_batch(&format!("BEGIN IMMEDIATE; {FORMAT_2} COMMIT;"))
                .map_err(open_err)?,
            2 => {}
            _ => {
                return Err(OutboxError::Corrupt {
                    path,
                    what: format!(
                        "unknown outbox format {format} (this version reads formats 1 and 2)"
                    ),
                })
            }
        }
        let (len, bytes): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(open_err)?;
        let meta = |key: &str| -> Result<u64> {
            let v: i64 = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(|source| OutboxError::Open {
                    path: path.clone(),
                    source,
                })?;
            Ok(v.max(0) as u64)
        };
        let dropped = Dropped {
            events: meta("dropped_events")?,
            counts: meta("dropped_counts")?,
            snapshots: meta("dropped_snapshots")?,
            clips: meta("dropped_clips")?,
        };
        let inner = Inner {
            conn,
            path: path.clone(),
            max_bytes: config.max_bytes,
            bytes: bytes.max(0) as u64,
            len: len.max(0) as u64,
            dropped,
            sent: HashMap::new(),
            slow_disk: std::time::Duration::ZERO,
        };
        Ok(Outbox {
            inner: Arc::new(Mutex::new(inner)),
            path: Arc::new(path),
        })
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every append take `delay` longer, as on a slow SD card (tests of what waits for
    /// the disk; the real file calls still run).
    #[doc(hidden)]
    pub fn simulate_slow_disk(&self, delay: std::time::Duration) {
        self.lock().slow_disk = delay;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-done transaction behind (SQLite
        // rolls back an uncommitted one), so the data behind a poisoned lock is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The seq the next event or counts message will get.
    pub fn next_seq(&self) -> Result<u64> {
        let g = self.lock();
        g.sql("read next_seq", |c| {
            c.query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|v| v.max(1) as u64)
    }

    /// Appends an event: `build` gets the event's seq (for `seq` and, on an incident's first
    /// message, the id: `ioc_protocol::incident_id`) and must return an event carrying it.
    /// Durable when it returns `Ok(seq)`.
    pub fn append_event(&self, build: impl FnOnce(u64) -> Event) -> Result<u64> {
        self.append_seq(EntryKind::Event, |seq| {
            let e = build(seq);
            let bytes = ioc_protocol::encode(&e);
            (e.seq, Some(e.id), bytes)
        })
    }

    /// Appends a counts message (same seq sequence as events). Durable when it returns `Ok`.
    pub fn append_counts(&self, build: impl FnOnce(u64) -> Counts) -> Result<u64> {
        self.append_seq(EntryKind::Counts, |seq| {
            let c = build(seq);
            let bytes = ioc_protocol::encode(&c);
            (c.seq, None, bytes)
        })
    }

    fn append_seq(
        &self,
        kind: EntryKind,
        build: impl FnOnce(u64) -> (u64, Option<String>, Result<Vec<u8>, ProtocolError>),
    ) -> Result<u64> {
        let mut g = self.lock();
        let inner = &mut *g;
        let slow = inner.slow_disk;
        let path = inner.path.clone();
        let sql = |op: &'static str| {
            let path = path.clone();
            move |source| OutboxError::Sqlite { path, op, source }
        };
        let tx = inner.conn.transaction().map_err(sql("begin append"))?;
        let seq = tx
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql("read next_seq"))?
            .max(1) as u64;
        let (found, event_id, payload) = build(seq);
        let payload = payload.map_err(|source| OutboxError::Invalid {
            path: path.clone(),
            source,
        })?;
        if found != seq {
            return Err(OutboxError::SeqMismatch {
                path,
                expected: seq,
                found,
            });
        }
        let size = payload.len() as u64;
        let room = make_room(&tx, &path, inner.max_bytes, inner.bytes, size, kind)?;
        debug_assert!(room.fits);
        tx.execute(
            "INSERT INTO entries (kind, seq, event_id, payload, size, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                kind.as_str(),
                seq as i64,
                event_id,
                payload,
                size as i64,
                now_ms()
            ],
        )
        .map_err(sql("insert entry"))?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'next_seq'",
            [(seq + 1) as i64],
        )
        .map_err(sql("advance next_seq"))?;
        add_dropped(&tx, &room.dropped).map_err(sql("count dropped entries"))?;
        if !slow.is_zero() {
            std::thread::sleep(slow);
        }
        tx.commit().map_err(sql("commit append"))?;
        inner.apply(size, &room);
        Ok(seq)
    }

    /// Appends the JPEG snapshot of event (incident) `event_id`. Returns `Ok(true)` when stored
    /// (durably), `Ok(false)` when the full policy dropped it (counted and logged).
    pub fn append_snapshot(&self, event_id: &str, jpeg: &[u8]) -> Result<bool> {
        self.append_picture(EntryKind::Snapshot, event_id, &[jpeg])
    }

    /// Appends the clip of event `event_id` as its parts (each part's wire payload, in order),
    /// all or nothing. Returns `Ok(true)` when stored (durably), `Ok(false)` when the full
    /// policy dropped it (counted and logged): a clip only ever displaces older clips.
    pub fn append_clip(&self, event_id: &str, parts: &[Vec<u8>]) -> Result<bool> {
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.append_picture(EntryKind::Clip, event_id, &parts)
    }

    /// A snapshot (one row, no part number) or a clip (a row per part), in one transaction.
    fn append_picture(&self, kind: EntryKind, event_id: &str, parts: &[&[u8]]) -> Result<bool> {
        let mut g = self.lock();
        let inner = &mut *g;
        let slow = inner.slow_disk;
        let path = inner.path.clone();
        if let Err(source) = ioc_protocol::validate_event_id(event_id) {
            return Err(OutboxError::BadEventId { path, source });
        }
        let sql = |op: &'static str| {
            let path = path.clone();
            move |source| OutboxError::Sqlite { path, op, source }
        };
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let tx = inner.conn.transaction().map_err(sql("begin append"))?;
        let mut room = make_room(&tx, &path, inner.max_bytes, inner.bytes, size, kind)?;
        let fits = room.fits;
        if fits {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO entries (kind, seq, event_id, payload, size, created_ms, part)
                     VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql("insert picture"))?;
            let now = now_ms();
            for (i, p) in parts.iter().enumerate() {
                let part = (kind == EntryKind::Clip).then_some(i as i64);
                ins.execute(params![
                    kind.as_str(),
                    event_id,
                    p,
                    p.len() as i64,
                    now,
                    part
                ])
                .map_err(sql("insert picture"))?;
            }
        } else {
            let keeps = if kind == EntryKind::Clip {
                room.dropped.clips += 1;
                "the events and snapshots"
            } else {
                room.dropped.snapshots += 1;
                "the events"
            };
            let what = kind.as_str();
            tracing::warn!(
                error_code = "outbox_full",
                outbox = %path.display(),
                event_id,
                size,
                max_bytes = inner.max_bytes,
                "OutboxEntryDropped: outbox full and no older {what} to drop: dropped the new {what} of event {event_id:?} ({size} bytes) to keep {keeps}"
            );
        }
        add_dropped(&tx, &room.dropped).map_err(sql("count dropped entries"))?;
        if !slow.is_zero() {
            std::thread::sleep(slow);
        }
        tx.commit().map_err(sql("commit append"))?;
        inner.apply(0, &room);
        if fits {
            inner.bytes += size;
            inner.len += parts.len() as u64;
        }
        Ok(fits)
    }

    /// The oldest `limit` unacknowledged entries for which `want` (given each one's send
    /// record) holds, in append order. Only those are read with their payload: the others
    /// (sent and waiting for their ack) cost no I/O, which matters once clips are queued.
    pub fn pending_where(
        &self,
        limit: usize,
        want: impl Fn(Option<&SentInfo>) -> bool,
    ) -> Result<Vec<Entry>> {
        let wanted: Vec<i64> = {
            let g = self.lock();
            let ids = g.sql("read pending entries", |c| {
                let mut st = c.prepare_cached("SELECT id FROM entries ORDER BY id LIMIT ?1")?;
                let rows = st.query_map([limit.min(i64::MAX as usize) as i64], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<Vec<i64>>>()
            })?;
            ids.into_iter().filter(|id| want(g.sent.get(id))).collect()
        };
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
            return Ok(Vec::new());
        };
        let mut out = self.entries_between(first, last)?;
        out.retain(|e| wanted.binary_search(&e.id).is_ok());
        Ok(out)
    }

    fn entries_between(&self, first: i64, last: i64) -> Result<Vec<Entry>> {
        let g = self.lock();
        let rows = g.sql("read pending entries", |c| {
            let mut st = c.prepare_cached(
                "SELECT id, kind, seq, event_id, payload, part FROM entries \
                 WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
            )?;
            let rows = st.query_map([first, last], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, kind, seq, event_id, payload, part)| {
                let kind = EntryKind::from_db(&kind).ok_or_else(|| OutboxError::Corrupt {
                    path: g.path.clone(),
                    what: format!("entry {id} has unknown kind {kind:?}"),
                })?;
                Ok(Entry {
                    id,
                    kind,
                    seq: seq.map(|s| s as u64),
                    event_id,
                    part: part.map(|p| p as u32),
                    payload,
                    sent: g.sent.get(&id).copied(),
                })
            })
            .collect()
    }

    /// The oldest `limit` unacknowledged entries, in append order.
    pub fn pending(&self, limit: usize) -> Result<Vec<Entry>> {
        self.pending_where(limit, |_| true)
    }

    /// Records that entries `ids` were handed to the MQTT client at `at` on connection number
    /// `connection` (memory only).
    pub fn mark_sent(&self, ids: &[i64], at: Instant, connection: u64) {
        let mut g = self.lock();
        for id in ids {
            let e = g.sent.entry(*id).or_insert(SentInfo {
                at,
                attempts: 0,
                connection,
            });
            e.at = at;
            e.connection = connection;
            e.attempts += 1;
        }
    }

    /// Forgets every send (after a reconnect: everything unacknowledged is sent again).
    pub fn clear_sent(&self) {
        self.lock().sent.clear();
    }

    /// Deletes the entries `ack` names (seqs for events and counts, ids for snapshots, event
    /// id and part for clip parts).
    /// Idempotent: entries already gone are ignored.
    pub fn ack(&self, ack: &Ack) -> Result<AckOutcome> {
        let mut g = self.lock();
        let inner = &mut *g;
        let path = inner.path.clone();
        let sql = |op: &'static str| {
            let path = path.clone();
            move |source| OutboxError::Sqlite { path, op, source }
        };
        let tx = inner.conn.transaction().map_err(sql("begin ack"))?;
        let mut out = AckOutcome::default();
        let mut freed = 0u64;
        let mut ids = Vec::new();
        {
            let mut sel = tx
                .prepare_cached(
                    "SELECT id, size FROM entries WHERE seq BETWEEN ?1 AND ?2 AND kind IN ('event', 'counts')",
                )
                .map_err(sql("read acked entries"))?;
            for r in &ack.seqs {
                if r.is_empty() {
                    continue;
                }
                let lo = r.first().min(i64::MAX as u64) as i64;
                let hi = r.last().min(i64::MAX as u64) as i64;
                let rows = sel
                    .query_map([lo, hi], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("read acked entries"))?;
                for (id, size) in rows {
                    ids.push(id);
                    freed += size as u64;
                    out.messages += 1;
                }
            }
            let mut sel = tx
                .prepare_cached(
                    "SELECT id, size FROM entries WHERE kind = 'snapshot' AND event_id = ?1",
                )
                .map_err(sql("read acked snapshots"))?;
            for eid in &ack.ids {
                let rows = sel
                    .query_map([eid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("read acked snapshots"))?;
                for (id, size) in rows {
                    ids.push(id);
                    freed += size as u64;
                    out.snapshots += 1;
                }
            }
            let mut sel = tx
                .prepare_cached(
                    "SELECT id, size FROM entries WHERE kind = 'clip' AND event_id = ?1 AND part = ?2",
                )
                .map_err(sql("read acked clip parts"))?;
            for ioc_protocol::ClipPartAck(eid, part) in &ack.clip_parts {
                let rows = sel
                    .query_map(params![eid, *part as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(sql("read acked clip parts"))?;
                for (id, size) in rows {
                    ids.push(id);
                    freed += size as u64;
                    out.clip_parts += 1;
                }
            }
            let mut del = tx
                .prepare_cached("DELETE FROM entries WHERE id = ?1")
                .map_err(sql("delete acked entries"))?;
            for id in &ids {
                del.execute([id]).map_err(sql("delete acked entries"))?;
            }
        }
        if ids.is_empty() {
            return Ok(out);
        }
        tx.commit().map_err(sql("commit ack"))?;
        inner.bytes = inner.bytes.saturating_sub(freed);
        inner.len = inner.len.saturating_sub(ids.len() as u64);
        for id in &ids {
            inner.sent.remove(id);
        }
        Ok(out)
    }

    /// Number of unacknowledged entries.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    /// Whether nothing waits for an ack.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The size bound.
    pub fn max_bytes(&self) -> u64 {
        self.lock().max_bytes
    }

    /// Entries dropped by the full policy, by kind, since the file was created.
    pub fn dropped(&self) -> Dropped {
        self.lock().dropped
    }

    /// When the oldest entry still waiting for an ack was appended (Unix ms), if any: how far
    /// behind delivery is.
    pub fn oldest_created_ms(&self) -> Result<Option<i64>> {
        let g = self.lock();
        g.sql("read the oldest entry", |c| {
            c.query_row(
                "SELECT created_ms FROM entries ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The seqs of all event and counts entries held, ascending (for tests and diagnostics).
    pub fn seqs(&self) -> Result<Vec<u64>> {
        let g = self.lock();
        g.sql("read seqs", |c| {
            let mut st = c.prepare("SELECT seq FROM entries WHERE seq IS NOT NULL ORDER BY seq")?;
            let v = st
                .query_map([], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v.into_iter().map(|s| s as u64).collect())
        })
    }

    #[cfg(test)]
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.lock().conn)
    }
}

impl Inner {
    fn sql<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        f(&self.conn).map_err(|source| OutboxError::Sqlite {
            path: self.path.clone(),
            op,
            source,
        })
    }

    /// After a commit: account for the dropped entries and the added one (`added` bytes, 0 if
    /// none was added), and log the drops.
    fn apply(&mut self, added: u64, room: &Room) {
        self.bytes = self.bytes.saturating_sub(room.freed);
        self.len = self.len.saturating_sub(room.victims.len() as u64);
        for id in &room.victims {
            self.sent.remove(id);
        }
        if added > 0 {
            self.bytes += added;
            self.len += 1;
        }
        let d = &room.dropped;
        self.dropped.events += d.events;
        self.dropped.counts += d.counts;
        self.dropped.snapshots += d.snapshots;
        self.dropped.clips += d.clips;
        if let Some(msg) = &room.log {
            tracing::warn!(
                error_code = "outbox_full",
                outbox = %self.path.display(),
                max_bytes = self.max_bytes,
                dropped_clips = d.clips,
                dropped_snapshots = d.snapshots,
                dropped_events = d.events,
                dropped_counts = d.counts,
                "OutboxEntryDropped: {msg}"
            );
        }
    }
}

/// What [`make_room`] did inside the append's transaction (applied to memory after commit).
struct Room {
    /// Whether the new entry fits (false only for a snapshot that would push out events).
    fits: bool,
    /// Rows deleted.
    victims: Vec<i64>,
    /// Their bytes.
    freed: u64,
    /// By kind.
    dropped: Dropped,
    /// The log line for the drops, if any.
    log: Option<String>,
}

/// Deletes entries per the full policy (module docs) until `size` more bytes fit next to
/// `bytes`.
fn make_room(
    tx: &Transaction<'_>,
    path: &Path,
    max_bytes: u64,
    bytes: u64,
    size: u64,
    kind: EntryKind,
) -> Result<Room> {
    if size > max_bytes {
        return Err(OutboxError::TooLarge {
            path: path.to_path_buf(),
            kind,
            size,
            max_bytes,
        });
    }
    let sql = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| OutboxError::Sqlite { path, op, source }
    };
    let mut room = Room {
        fits: true,
        victims: Vec::new(),
        freed: 0,
        dropped: Dropped::default(),
        log: None,
    };
    let mut dropped_seqs: Vec<u64> = Vec::new();
    let mut dropped_snaps: Vec<String> = Vec::new();
    let mut total = bytes;
    // Choose victims first, delete only once the new entry is known to fit. Whole clips first
    // (a clip missing a part is worth nothing).
    let mut after = 0i64;
    while total + size > max_bytes {
        let clip: Option<(i64, Option<String>)> = tx
            .query_row(
                "SELECT id, event_id FROM entries WHERE kind = 'clip' AND id > ?1 ORDER BY id LIMIT 1",
                [after],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("find oldest clip"))?;
        let Some((first, eid)) = clip else { break };
        let mut st = tx
            .prepare_cached("SELECT id, size FROM entries WHERE kind = 'clip' AND event_id IS ?1")
            .map_err(sql("find clip parts"))?;
        let parts = st
            .query_map([&eid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql("find clip parts"))?;
        for (id, s) in parts {
            after = after.max(id);
            if !room.victims.contains(&id) {
                room.victims.push(id);
                total = total.saturating_sub(s as u64);
            }
        }
        after = after.max(first);
        room.dropped.clips += 1;
    }
    if total + size > max_bytes && kind == EntryKind::Clip {
        // Keep snapshots and events over a new clip: drop nothing, refuse the clip.
        room.fits = false;
        room.victims.clear();
        room.dropped = Dropped::default();
        return Ok(room);
    }
    let mut after = 0i64;
    while total + size > max_bytes {
        let snap: Option<(i64, i64, Option<String>)> = tx
            .query_row(
                "SELECT id, size, event_id FROM entries WHERE kind = 'snapshot' AND id > ?1 ORDER BY id LIMIT 1",
                [after],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql("find oldest snapshot"))?;
        let Some((id, s, eid)) = snap else { break };
        after = id;
        room.victims.push(id);
        total = total.saturating_sub(s as u64);
        room.dropped.snapshots += 1;
        dropped_snaps.push(eid.unwrap_or_default());
    }
    if total + size > max_bytes && kind == EntryKind::Snapshot {
        // Keep events over a new snapshot: drop nothing, refuse the snapshot.
        room.fits = false;
        room.victims.clear();
        room.dropped = Dropped::default();
        return Ok(room);
    }
    let mut after = 0i64;
    while total + size > max_bytes {
        let row: Option<(i64, i64, String, Option<i64>)> = tx
            .query_row(
                "SELECT id, size, kind, seq FROM entries WHERE kind IN ('event', 'counts') AND id > ?1 ORDER BY id LIMIT 1",
                [after],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql("find oldest entry"))?;
        let Some((id, s, k, seq)) = row else { break };
        after = id;
        room.victims.push(id);
        total = total.saturating_sub(s as u64);
        if k == "counts" {
            room.dropped.counts += 1;
        } else {
            room.dropped.events += 1;
        }
        if let Some(seq) = seq {
            dropped_seqs.push(seq as u64);
        }
    }
    if room.victims.is_empty() {
        return Ok(room);
    }
    {
        let mut del = tx
            .prepare_cached("DELETE FROM entries WHERE id = ?1")
            .map_err(sql("drop entries"))?;
        for id in &room.victims {
            del.execute([id]).map_err(sql("drop entries"))?;
        }
    }
    room.freed = bytes - total;
    let seq_range = match (dropped_seqs.first(), dropped_seqs.last()) {
        (Some(a), Some(b)) => format!(" (seqs {a}..={b})"),
        _ => String::new(),
    };
    let snaps = if dropped_snaps.is_empty() {
        String::new()
    } else {
        format!(
            "; snapshots of events {:?}{}",
            &dropped_snaps[..dropped_snaps.len().min(5)],
            if dropped_snaps.len() > 5 { " ..." } else { "" }
        )
    };
    let d = room.dropped;
    room.log = Some(format!(
        "outbox {} full ({max_bytes} bytes): dropped the oldest {} clip(s), {} snapshot(s), {} event(s){seq_range} and {} counts message(s) to make room for a {size} byte {}{snaps}",
        path.display(),
        d.clips,
        d.snapshots,
        d.events,
        d.counts,
        kind.as_str(),
    ));
    Ok(room)
}

fn add_dropped(tx: &Transaction<'_>, d: &Dropped) -> rusqlite::Result<()> {
    for (key, n) in [
        ("dropped_events", d.events),
        ("dropped_counts", d.counts),
        ("dropped_snapshots", d.snapshots),
        ("dropped_clips", d.clips),
    ] {
        if n > 0 {
            tx.execute(
                "UPDATE meta SET value = value + ?1 WHERE key = ?2",
                params![n as i64, key],
            )?;
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ioc_protocol::{incident_id, Timestamp};

    /// A valid instant event of `agent` with `seq`.
    pub(crate) fn event(agent: &str, seq: u64) -> Event {
        Event::example(agent, seq)
    }

    fn open(dir: &tempfile::TempDir, max_bytes: u64) -> Outbox {
        Outbox::open(dir.path().join("outbox.db"), OutboxConfig { max_bytes }).unwrap()
    }

    #[test]
    fn seqs_are_never_reused_across_acks_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(&dir, DEFAULT_MAX_BYTES);
        for want in 1..=5 {
            assert_eq!(ob.append_event(|s| event("a1", s)).unwrap(), want);
        }
        let out = ob.ack(&Ack::from_seqs(1..=5)).unwrap();
        assert_eq!(out.messages, 5);
        assert!(ob.is_empty());
        assert_eq!(ob.bytes(), 0);
        assert_eq!(ob.next_seq().unwrap(), 6);
        drop(ob);
        let ob = open(&dir, DEFAULT_MAX_BYTES);
        assert_eq!(ob.next_seq().unwrap(), 6);
        assert_eq!(ob.append_event(|s| event("a1", s)).unwrap(), 6);
        // Counts share the sequence.
        let c = ob
            .append_counts(|seq| Counts {
                schema: ioc_protocol::COUNTS_SCHEMA.into(),
                seq,
                agent: "a1".into(),
                camera: "cam-1".into(),
                line: "door".into(),
                interval_start: Timestamp::parse("2024-05-01T12:00:00Z").unwrap(),
                interval_end: Timestamp::parse("2024-05-01T12:01:00Z").unwrap(),
                counts: vec![],
            })
            .unwrap();
        assert_eq!(c, 7);
        assert_eq!(ob.seqs().unwrap(), vec![6, 7]);
        // The oldest waiting entry is seq 6's; none once everything is acked.
        let oldest = ob.oldest_created_ms().unwrap().unwrap();
        let now = Timestamp::now().unix_millis();
        assert!(oldest <= now && now - oldest < 60_000, "{oldest} vs {now}");
        ob.ack(&Ack::from_seqs(6..=7)).unwrap();
        assert_eq!(ob.oldest_created_ms().unwrap(), None);
    }

    #[test]
    fn pending_is_in_append_order_and_ack_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(&dir, DEFAULT_MAX_BYTES);
        let s1 = ob.append_event(|s| event("a1", s)).unwrap();
        assert!(ob
            .append_snapshot(&incident_id("a1", s1), b"jpeg-1")
            .unwrap());
        let s2 = ob.append_event(|s| event("a1", s)).unwrap();
        let p = ob.pending(10).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EntryKind::Event, EntryKind::Snapshot, EntryKind::Event]
        );
        assert_eq!(p[0].seq, Some(s1));
        assert_eq!(p[1].event_id.as_deref(), Some("a1-1"));
        assert_eq!(p[1].payload, b"jpeg-1");
        assert_eq!(p[2].seq, Some(s2));
        let e: Event = ioc_protocol::parse_event(&p[2].payload).unwrap();
        assert_eq!((e.seq, e.id.as_str()), (2, "a1-2"));
        assert!(p.iter().all(|e| e.sent.is_none()));
        assert_eq!(ob.pending(1).unwrap().len(), 1);

        // Sent tracking.
        let now = Instant::now();
        ob.mark_sent(&[p[0].id, p[2].id], now, 1);
        ob.mark_sent(&[p[0].id], now, 1);
        let q = ob.pending(10).unwrap();
        assert_eq!(q[0].sent.unwrap().attempts, 2);
        assert!(q[1].sent.is_none());
        assert_eq!(q[2].sent.unwrap().attempts, 1);

        // Ack seq 2 and the snapshot; a repeated or unknown ack is harmless.
        let out = ob
            .ack(&Ack::new([2, 99], vec!["a1-1".into(), "a1-77".into()]))
            .unwrap();
        assert_eq!(
            out,
            AckOutcome {
                messages: 1,
                snapshots: 1,
                clip_parts: 0,
            }
        );
        assert_eq!(ob.ack(&Ack::from_seqs([2])).unwrap(), AckOutcome::default());
        let q = ob.pending(10).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].seq, Some(1));
        assert_eq!(ob.len(), 1);
        assert_eq!(ob.bytes(), q[0].payload.len() as u64);
        ob.clear_sent();
        assert!(ob.pending(10).unwrap()[0].sent.is_none());
    }

    #[test]
    fn rejects_event_with_wrong_seq_or_invalid_content() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(&dir, DEFAULT_MAX_BYTES);
        let e = ob.append_event(|s| event("a1", s + 1)).unwrap_err();
        assert!(
            matches!(
                e,
                OutboxError::SeqMismatch {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{e}"
        );
        let e = ob
            .append_event(|s| {
                let mut e = event("a1", s);
                e.camera = "Bad Camera".into();
                e
            })
            .unwrap_err();
        assert!(e.to_string().contains("invalid"), "{e}");
        assert!(ob.append_snapshot("Bad/Id", b"x").is_err());
        // Nothing was consumed.
        assert_eq!(ob.next_seq().unwrap(), 1);
        assert!(ob.is_empty());
    }

    #[test]
    fn full_outbox_drops_snapshots_first_then_oldest_events() {
        let dir = tempfile::tempdir().unwrap();
        let ev_size = ioc_protocol::encode(&event("a1", 1)).unwrap().len() as u64;
        // Room for about 4 events and one 3-event-sized snapshot... then pressure.
        let max = ev_size * 8;
        let ob = open(&dir, max);
        ob.append_event(|s| event("a1", s)).unwrap(); // 1
        assert!(ob
            .append_snapshot("a1-1", &vec![0xFF; (ev_size * 3) as usize])
            .unwrap());
        ob.append_event(|s| event("a1", s)).unwrap(); // 2
        assert!(ob
            .append_snapshot("a1-2", &vec![0xFF; (ev_size * 2) as usize])
            .unwrap());
        // 1 + 3 + 1 + 2 = 7 units (approx; seqs may differ by a digit). Two more events do not
        // fit: the oldest snapshot (a1-1) goes first.
        ob.append_event(|s| event("a1", s)).unwrap(); // 3
        ob.append_event(|s| event("a1", s)).unwrap(); // 4
        assert_eq!(
            ob.dropped(),
            Dropped {
                events: 0,
                counts: 0,
                snapshots: 1,
                clips: 0,
            }
        );
        let ids: Vec<_> = ob
            .pending(100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Snapshot)
            .map(|e| e.event_id.unwrap())
            .collect();
        assert_eq!(ids, ["a1-2"]);
        // Keep appending: the other snapshot goes, then the oldest events, in order.
        for _ in 0..6 {
            ob.append_event(|s| event("a1", s)).unwrap();
        }
        let d = ob.dropped();
        assert_eq!(d.snapshots, 2);
        assert!(d.events >= 2, "{d:?}");
        let seqs = ob.seqs().unwrap();
        assert_eq!(*seqs.last().unwrap(), 10);
        assert_eq!(
            seqs.first().copied(),
            Some(1 + d.events),
            "oldest dropped first"
        );
        assert!(ob.bytes() <= max);
        // A snapshot never pushes out events: it is dropped itself, and counted.
        assert!(!ob
            .append_snapshot("a1-10", &vec![0xFF; (ev_size * 3) as usize])
            .unwrap());
        assert_eq!(ob.dropped().snapshots, 3);
        assert_eq!(ob.seqs().unwrap(), seqs);
        // Too large on its own is an error.
        let e = ob
            .append_snapshot("a1-10", &vec![0; max as usize + 1])
            .unwrap_err();
        assert!(matches!(e, OutboxError::TooLarge { .. }), "{e}");
        // The counters persist.
        let d = ob.dropped();
        drop(ob);
        let ob = open(&dir, max);
        assert_eq!(ob.dropped(), d);
        assert!(ob.bytes() <= max);
    }

    #[test]
    fn clips_are_acked_by_part_and_give_way_first() {
        let dir = tempfile::tempdir().unwrap();
        let ev_size = ioc_protocol::encode(&event("a1", 1)).unwrap().len() as u64;
        let max = ev_size * 12;
        let ob = open(&dir, max);
        ob.append_event(|s| event("a1", s)).unwrap(); // 1
        let part = vec![7u8; ev_size as usize];
        assert!(ob
            .append_clip("a1-1", &[part.clone(), part.clone()])
            .unwrap());
        assert!(ob
            .append_snapshot("a1-1", &vec![0xFF; ev_size as usize])
            .unwrap());
        assert!(ob
            .append_clip("a1-2", &[part.clone(), part.clone()])
            .unwrap());
        let clips: Vec<_> = ob
            .pending(100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Clip)
            .map(|e| (e.event_id.unwrap(), e.part.unwrap(), e.payload.len()))
            .collect();
        assert_eq!(
            clips,
            [
                ("a1-1".to_owned(), 0, part.len()),
                ("a1-1".to_owned(), 1, part.len()),
                ("a1-2".to_owned(), 0, part.len()),
                ("a1-2".to_owned(), 1, part.len()),
            ]
        );
        // One part acked: only it goes; a seq ack never touches clips.
        let out = ob
            .ack(
                &Ack::from_seqs([1, 2, 3])
                    .with_clip_parts(vec![ioc_protocol::ClipPartAck("a1-2".into(), 1)]),
            )
            .unwrap();
        assert_eq!((out.messages, out.clip_parts), (1, 1));
        assert_eq!(ob.len(), 4);
        // Pressure: the oldest clip goes whole, before the snapshot.
        for _ in 0..9 {
            ob.append_event(|s| event("a1", s)).unwrap();
        }
        let d = ob.dropped();
        assert_eq!((d.clips, d.snapshots, d.events), (1, 0, 0), "{d:?}");
        let left: Vec<_> = ob
            .pending(100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Clip)
            .map(|e| (e.event_id.unwrap(), e.part.unwrap()))
            .collect();
        assert_eq!(left, [("a1-2".to_owned(), 0)]);
        // A clip never pushes out a snapshot or an event: it is refused and counted.
        let big = vec![1u8; (ev_size * 4) as usize];
        assert!(!ob.append_clip("a1-9", &[big.clone(), big]).unwrap());
        assert_eq!(ob.dropped().clips, 2);
        assert_eq!(ob.dropped().snapshots, 0);
        assert!(ob.bytes() <= max);
        assert!(ob.append_clip("Bad/Id", &[part]).is_err());
        let n = ob.pending(100).unwrap().len() as u64;
        assert_eq!(ob.len(), n);
        let d = ob.dropped();
        drop(ob);
        assert_eq!(open(&dir, max).dropped(), d);
    }

    #[test]
    fn a_format_1_outbox_is_upgraded_keeping_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) STRICT;
                 CREATE TABLE entries (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     kind TEXT NOT NULL CHECK (kind IN ('event', 'counts', 'snapshot')),
                     seq INTEGER UNIQUE, event_id TEXT, payload BLOB NOT NULL,
                     size INTEGER NOT NULL, created_ms INTEGER NOT NULL) STRICT;
                 INSERT INTO meta VALUES ('format', 1), ('next_seq', 8), ('dropped_events', 2),
                     ('dropped_counts', 0), ('dropped_snapshots', 1);
                 INSERT INTO entries VALUES (41, 'snapshot', NULL, 'a1-7', x'FFD8', 2, 1);",
            )
            .unwrap();
            let json = ioc_protocol::encode(&event("a1", 7)).unwrap();
            c.execute(
                "INSERT INTO entries VALUES (40, 'event', 7, 'a1-7', ?1, ?2, 1)",
                params![json, json.len() as i64],
            )
            .unwrap();
        }
        let ob = Outbox::open(&path, OutboxConfig::default()).unwrap();
        let p = ob.pending(10).unwrap();
        assert_eq!(
            p.iter().map(|e| (e.id, e.kind)).collect::<Vec<_>>(),
            [(40, EntryKind::Event), (41, EntryKind::Snapshot)]
        );
        assert_eq!(ob.next_seq().unwrap(), 8);
        assert_eq!(ob.dropped().events, 2);
        ob.ack(&Ack::new([7], vec!["a1-7".into()])).unwrap();
        // Ids keep growing past the old ones, and clips can be stored.
        assert!(ob.append_clip("a1-8", &[vec![1, 2, 3]]).unwrap());
        assert!(ob.pending(10).unwrap()[0].id > 41);
        drop(ob);
        // Opening again finds format 2 and changes nothing.
        let ob = Outbox::open(&path, OutboxConfig::default()).unwrap();
        assert_eq!(ob.len(), 1);
    }

    #[test]
    fn bad_paths_give_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("outbox.db");
        let e = Outbox::open(&missing, OutboxConfig::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cannot open outbox") && msg.contains("no-such-dir"),
            "{msg}"
        );

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5Au8; 8192]).unwrap();
        let e = Outbox::open(&garbage, OutboxConfig::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("garbage.db") && msg.contains("not a database"),
            "{msg}"
        );

        // A directory where the file should be.
        let e = Outbox::open(dir.path(), OutboxConfig::default()).unwrap_err();
        assert!(e.to_string().contains("cannot open outbox"), "{e}");
    }

    #[test]
    fn disk_full_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let ob = open(&dir, DEFAULT_MAX_BYTES);
        ob.append_event(|s| event("a1", s)).unwrap();
        // Simulate a full disk: cap the database's size in pages.
        ob.with_conn(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let _: i64 = c
                .query_row(&format!("PRAGMA max_page_count = {}", pages + 2), [], |r| {
                    r.get(0)
                })
                .unwrap();
        });
        let big = vec![1u8; 256 * 1024];
        let mut err = None;
        for i in 0..10 {
            if let Err(e) = ob.append_snapshot(&format!("a1-{i}"), &big) {
                err = Some(e);
                break;
            }
        }
        let e = err.expect("a capped database must refuse writes");
        assert!(e.is_disk_full(), "{e}");
        assert!(
            e.to_string().contains("disk full") && e.to_string().contains("outbox.db"),
            "{e}"
        );
        // Still usable for reads and acks; the counters match the table.
        let n = ob.pending(100).unwrap().len() as u64;
        assert_eq!(ob.len(), n);
        assert_eq!(ob.next_seq().unwrap(), 2);
    }
}
