//! Incident SQL: grouping events into incidents, the lifecycle, escalation, health incidents,
//! silences and the audit trail (the rules themselves live in [`crate::incident`]).

use std::collections::{BTreeMap, HashMap};

use ioc_protocol::{Event, Phase, Severity};

use super::db::{Db, DbError, Dialect, Row, ToArg};
use super::{sql_names, sqlerr, Store, StoreError};
use crate::incident::{
    camera_down, camera_offline, camera_states, parse_severity, severity_rank, severity_str, ts,
    Action, AuditEntry, Change, ChangeKind, Incident, Policy, Source, State, Transition,
    AGENT_OFFLINE,
};

pub use crate::incident::SYSTEM;

/// The advisory lock of the periodic checks on PostgreSQL: one collector runs them at a time.
const PG_TICK_LOCK: i64 = 0x696f_635f_7469_636b; // "ioc_tick"

const INCIDENT_COLUMNS: &str = "id, agent, camera, kind, place, severity, state, source, \
     first_at_ms, last_at_ms, created_at_ms, updated_at_ms, event_count, snapshot_event_id, \
     assignee, acked_at_ms, acked_by, closed_at_ms, closed_by, overdue, escalations, silenced, \
     active, rule";

fn incident_row(r: &Row) -> Result<Incident, DbError> {
    let state: String = r.get(6)?;
    let source: String = r.get(7)?;
    Ok(Incident {
        id: r.get(0)?,
        site: r.get(1)?,
        camera: r.get(2)?,
        kind: r.get(3)?,
        place: r.get(4)?,
        severity: parse_severity(&r.get::<String>(5)?),
        state: State::parse(&state).unwrap_or(State::Open),
        source: if source == "health" {
            Source::Health
        } else {
            Source::Event
        },
        first_at: ts(r.get(8)?),
        last_at: ts(r.get(9)?),
        created_at: ts(r.get(10)?),
        updated_at: ts(r.get(11)?),
        event_count: r.get(12)?,
        snapshot: r.get(13)?,
        assignee: r.get(14)?,
        acknowledged_at: r.get::<Option<i64>>(15)?.map(ts),
        acknowledged_by: r.get(16)?,
        closed_at: r.get::<Option<i64>>(17)?.map(ts),
        closed_by: r.get(18)?,
        overdue: r.get(19)?,
        escalations: r.get(20)?,
        silenced: r.get(21)?,
        active: r.get(22)?,
        rule: r.get(23)?,
    })
}

pub(super) fn load(db: &Db, id: i64) -> Result<Option<Incident>, DbError> {
    db.query_opt(
        &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
        &[&id],
    )?
    .map(|r| incident_row(&r))
    .transpose()
}

/// [`load`], locking the row until the transaction ends where the engine has row locks
/// (PostgreSQL: two collectors' operators acting on one incident go one after the other;
/// SQLite's write transaction already excludes everyone).
fn load_for_update(db: &Db, id: i64) -> Result<Option<Incident>, DbError> {
    match db.dialect() {
        Dialect::Sqlite => load(db, id),
        Dialect::Postgres => db
            .query_opt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1 FOR UPDATE"),
                &[&id],
            )?
            .map(|r| incident_row(&r))
            .transpose(),
    }
}

pub(super) fn audit(
    db: &Db,
    incident: Option<i64>,
    at_ms: i64,
    actor: &str,
    action: &str,
    states: (Option<&str>, Option<&str>),
    note: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO audit (incident_id, at_ms, actor, action, from_state, to_state, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            &incident, &at_ms, &actor, &action, &states.0, &states.1, &note,
        ],
    )?;
    Ok(())
}

/// Is `agent`/`camera` under a maintenance silence at `at_ms`?
fn silenced(db: &Db, agent: &str, camera: &str, at_ms: i64) -> Result<bool, DbError> {
    db.query_one(
        "SELECT EXISTS (SELECT 1 FROM silences WHERE agent = ?1 \
         AND (camera IS NULL OR camera = ?2) AND starts_at_ms <= ?3 AND ends_at_ms > ?3)",
        &[&agent, &camera, &at_ms],
    )?
    .get(0)
}

/// What to open: the key and first facts of a new incident.
struct NewIncident<'a> {
    agent: &'a str,
    camera: &'a str,
    kind: &'a str,
    place: &'a str,
    severity: Severity,
    source: Source,
    observed_ms: i64,
    rule: Option<&'a str>,
}

fn open_incident(db: &Db, n: &NewIncident<'_>, now_ms: i64) -> Result<i64, DbError> {
    let silenced = silenced(db, n.agent, n.camera, now_ms)?;
    let id: i64 = db
        .query_one(
            "INSERT INTO incidents (agent, camera, kind, place, severity, state, source, \
             first_at_ms, last_at_ms, created_at_ms, updated_at_ms, due_base_ms, event_count, \
             silenced, rule) VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?7, ?8, ?8, ?8, 0, ?9, \
             ?10) RETURNING id",
            &[
                &n.agent,
                &n.camera,
                &n.kind,
                &n.place,
                &severity_str(n.severity),
                &match n.source {
                    Source::Event => "event",
                    Source::Health => "health",
                },
                &n.observed_ms,
                &now_ms,
                &silenced,
                &n.rule,
            ],
        )?
        .get(0)?;
    let note = silenced.then_some("opened during a maintenance silence");
    audit(
        db,
        Some(id),
        now_ms,
        SYSTEM,
        "opened",
        (None, Some("open")),
        note,
    )?;
    Ok(id)
}

/// Which incident each (agent, camera, kind, place) key last joined: `(key, incident, its
/// latest event)`. A batch touches few keys, so a list searched with borrowed strings beats
/// hashing owned ones per event.
pub(super) type KeyCache = Vec<([String; 4], i64, i64)>;

/// Most keys a [`KeyCache`] keeps between batches (a linear search stays cheap).
const KEY_CACHE_MAX: usize = 256;

/// Files a batch's new events under incidents. Lookups go to the database once per key and
/// are then served from the batch's own state; each incident touched gets one `UPDATE` at the
/// end of the batch ([`Filing::flush`]), not one per event.
#[derive(Default)]
pub(super) struct Filing {
    /// Keys known to this batch (and, on SQLite, to the batches before it).
    by_key: KeyCache,
    /// (agent, event id) -> incident, for starts filed in this batch.
    by_start: HashMap<(String, String), i64>,
    /// What to write to each incident touched.
    pending: BTreeMap<i64, Pending>,
}

struct Pending {
    last_at_ms: i64,
    now_ms: i64,
    new_events: i64,
    severity: Severity,
    active: bool,
    snapshot: Option<String>,
}

impl Filing {
    /// A filing that starts from the keys `known` from earlier batches. Only a store that is
    /// the database's one writer may pass any: another writer could close an incident behind
    /// its back.
    pub(super) fn with_keys(known: KeyCache) -> Filing {
        Filing {
            by_key: known,
            ..Filing::default()
        }
    }

    /// Forgets incidents closed meanwhile (health incidents resolved in this batch).
    pub(super) fn forget(&mut self, ids: &[i64]) {
        self.by_key.retain(|(_, id, _)| !ids.contains(id));
    }

    /// The keys as this batch left them, to start the next one from (after the commit).
    pub(super) fn into_keys(mut self) -> KeyCache {
        if self.by_key.len() > KEY_CACHE_MAX {
            self.by_key.clear();
        }
        self.by_key
    }

    /// Files event `e` (not stored before) at `now_ms`, as observed at `observed` (its own
    /// time, or the receive time when its agent's clock is off): its incident and how it
    /// changed.
    pub(super) fn file(
        &mut self,
        db: &Db,
        e: &Event,
        observed: i64,
        now_ms: i64,
        policy: &Policy,
    ) -> Result<(i64, ChangeKind), DbError> {
        let place = e.zone.as_deref().or(e.line.as_deref()).unwrap_or("");
        // Later phases of an agent incident go where its start went.
        let known = if matches!(e.phase, Phase::Update | Phase::End) {
            match self.by_start.get(&(e.agent.clone(), e.id.clone())) {
                Some(id) => Some(*id),
                None => db
                    .query_opt(
                        "SELECT incident_id FROM incident_starts \
                         WHERE agent = ?1 AND event_id = ?2",
                        &[&e.agent, &e.id],
                    )?
                    .map(|r| r.get(0))
                    .transpose()?,
            }
        } else {
            None
        };
        let (id, change, first) = match known {
            Some(id) => (id, ChangeKind::Updated, false),
            None => {
                let key = [e.agent.as_str(), e.camera.as_str(), e.kind.as_str(), place];
                let slot = self.by_key.iter().position(|(k, _, _)| k == &key);
                // A camera outage is one incident however long it lasts and whoever noticed
                // it first (the agent's rule or the collector's health check).
                let since = if e.kind == ioc_protocol::EventKind::CameraOffline {
                    i64::MIN
                } else {
                    observed - policy.group_window_ms
                };
                let cached = slot
                    .map(|i| (self.by_key[i].1, self.by_key[i].2))
                    .filter(|(_, last)| *last >= since);
                let joinable = match cached {
                    Some(hit) => Some(hit),
                    None => db
                        .query_opt(
                            "SELECT id, last_at_ms FROM incidents WHERE agent = ?1 \
                             AND camera = ?2 AND kind = ?3 AND place = ?4 \
                             AND state IN ('open', 'acknowledged') AND last_at_ms >= ?5 \
                             ORDER BY id DESC LIMIT 1",
                            &[&e.agent, &e.camera, &e.kind.as_str(), &place, &since],
                        )?
                        .map(|r| Ok::<_, DbError>((r.get(0)?, r.get(1)?)))
                        .transpose()?,
                };
                let (id, last, change) = match joinable {
                    Some((id, last)) => (id, last, ChangeKind::Updated),
                    None => {
                        let n = NewIncident {
                            agent: &e.agent,
                            camera: &e.camera,
                            kind: e.kind.as_str(),
                            place,
                            severity: e.severity,
                            source: Source::Event,
                            observed_ms: observed,
                            rule: Some(e.rule.as_str()),
                        };
                        (open_incident(db, &n, now_ms)?, observed, ChangeKind::Opened)
                    }
                };
                let entry = (key.map(str::to_owned), id, last.max(observed));
                match slot {
                    Some(i) => self.by_key[i] = entry,
                    None => self.by_key.push(entry),
                }
                if e.phase == Phase::Start {
                    db.execute(
                        "INSERT OR IGNORE INTO incident_starts (agent, event_id, incident_id) \
                         VALUES (?1, ?2, ?3)",
                        &[&e.agent, &e.id, &id],
                    )?;
                    self.by_start.insert((e.agent.clone(), e.id.clone()), id);
                }
                (id, change, true)
            }
        };
        let p = self.pending.entry(id).or_insert(Pending {
            last_at_ms: observed,
            now_ms,
            new_events: 0,
            severity: e.severity,
            active: true,
            snapshot: None,
        });
        p.last_at_ms = p.last_at_ms.max(observed);
        p.now_ms = p.now_ms.max(now_ms);
        p.new_events += i64::from(first);
        if severity_rank(e.severity) > severity_rank(p.severity) {
            p.severity = e.severity;
        }
        p.active = !matches!(e.phase, Phase::End | Phase::Instant);
        if p.snapshot.is_none() && e.snapshot.is_some() {
            p.snapshot = Some(e.id.clone());
        }
        Ok((id, change))
    }

    /// Writes what the batch's events changed, one `UPDATE` per incident. On PostgreSQL the
    /// same statement returns the incidents as they are after it (saving a round trip each);
    /// on SQLite `RETURNING` measured slower than reading them back by key, so the map is
    /// empty and the caller reads them.
    pub(super) fn flush(&mut self, db: &Db) -> Result<HashMap<i64, Incident>, DbError> {
        static RETURNING: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("{FLUSH_SQL} RETURNING {INCIDENT_COLUMNS}"));
        let mut after = HashMap::new();
        for (id, p) in std::mem::take(&mut self.pending) {
            let args: [&dyn ToArg; 8] = [
                &id,
                &p.last_at_ms,
                &p.now_ms,
                &p.new_events,
                &i64::from(severity_rank(p.severity)),
                &severity_str(p.severity),
                &p.active,
                &p.snapshot,
            ];
            match db.dialect() {
                Dialect::Sqlite => {
                    db.execute(FLUSH_SQL, &args)?;
                }
                Dialect::Postgres => {
                    let row = db.query_one(&RETURNING, &args)?;
                    after.insert(id, incident_row(&row)?);
                }
            }
        }
        Ok(after)
    }
}

/// What a batch's events change in one incident (see [`Filing::flush`]).
const FLUSH_SQL: &str = "UPDATE incidents SET last_at_ms = CASE WHEN ?2 > last_at_ms THEN ?2 \
     ELSE last_at_ms END, updated_at_ms = ?3, event_count = event_count + ?4, \
     severity = CASE WHEN ?5 > (CASE severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 \
     ELSE 0 END) THEN ?6 ELSE severity END, active = ?7, \
     snapshot_event_id = COALESCE(snapshot_event_id, ?8) WHERE id = ?1";

/// Resolves the open incidents of `agent`/`camera`/`kind` because the thing is back, whoever
/// opened them (an outage is one incident: see [`Filing::file`]).
pub(super) fn health_recovered(
    db: &Db,
    agent: &str,
    camera: &str,
    kind: &str,
    now_ms: i64,
    why: &str,
) -> Result<Vec<i64>, DbError> {
    let ids: Vec<(i64, String)> = db
        .query(
            "SELECT id, state FROM incidents WHERE agent = ?1 AND camera = ?2 AND kind = ?3 \
             AND state IN ('open', 'acknowledged')",
            &[&agent, &camera, &kind],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_, DbError>>()?;
    for (id, from) in &ids {
        db.execute(
            "UPDATE incidents SET state = 'resolved', closed_at_ms = ?2, closed_by = ?3, \
             updated_at_ms = ?2, active = 0, overdue = 0 WHERE id = ?1",
            &[id, &now_ms, &SYSTEM],
        )?;
        audit(
            db,
            Some(*id),
            now_ms,
            SYSTEM,
            "resolve",
            (Some(from), Some("resolved")),
            Some(why),
        )?;
    }
    Ok(ids.into_iter().map(|(id, _)| id).collect())
}

/// Why an operator's action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No incident with that id.
    #[error("no incident {0}")]
    NotFound(i64),
    /// Not allowed in the incident's state.
    #[error(transparent)]
    Conflict(#[from] Transition),
    /// A note or assignee is required and missing, or too long.
    #[error("{0}")]
    Invalid(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new maintenance silence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// The site (agent).
    pub site: String,
    /// One camera, or the whole site when absent.
    #[serde(default)]
    pub camera: Option<String>,
    /// End (Unix ms).
    pub ends_at_ms: i64,
    /// Why.
    pub reason: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Silence {
    /// Row id.
    pub id: i64,
    /// The site (agent).
    pub site: String,
    /// The camera, or all of the site.
    pub camera: Option<String>,
    /// Start (Unix ms).
    pub starts_at_ms: i64,
    /// End (Unix ms).
    pub ends_at_ms: i64,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
}

/// How many incidents of one kind are in one live state (see
/// [`Store::live_incident_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCount {
    /// Event kind.
    pub kind: String,
    /// `open` or `acknowledged`.
    pub state: String,
    /// How many.
    pub count: i64,
    /// Of those, past their deadline.
    pub overdue: i64,
}

/// Filters for [`Store::incidents`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentFilter {
    /// Comma-separated states (`open,acknowledged`); all when absent.
    #[serde(default)]
    pub state: Option<String>,
    /// One kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// One site (agent).
    #[serde(default)]
    pub site: Option<String>,
    /// One camera.
    #[serde(default)]
    pub camera: Option<String>,
    /// First event at or after (Unix ms).
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// First event before (Unix ms).
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Only ids below this (the next page: the last id of the previous one).
    #[serde(default)]
    pub before_id: Option<i64>,
    /// Page size (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Include silenced incidents (default: no).
    #[serde(default)]
    pub silenced: Option<bool>,
}

/// One stored event of an incident.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IncidentEvent {
    /// Agent seq.
    pub seq: i64,
    /// The agent's event id.
    pub event_id: String,
    /// `start`, `update`, …
    pub phase: String,
    /// Observed at.
    pub observed_at: String,
    /// Whether a snapshot of it is stored.
    pub has_snapshot: bool,
    /// Whether its video clip has arrived whole (`/api/clips/{agent}/{event_id}`).
    pub has_clip: bool,
    /// The event as received.
    pub event: serde_json::Value,
}

impl Store {
    /// The policy incidents follow (grouping window, deadlines, hysteresis).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// One incident.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        load(&self.db, id).map_err(self.err("cannot read incident"))
    }

    /// Incidents matching `f`, newest first.
    pub fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1");
        let mut args: Vec<&dyn ToArg> = Vec::new();
        fn push<'a>(args: &mut Vec<&'a dyn ToArg>, cond: &str, v: &'a dyn ToArg, sql: &mut String) {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        }
        if let Some(states) = &f.state {
            let list: Vec<&str> = states
                .split(',')
                .map(str::trim)
                .filter(|s| State::parse(s).is_some())
                .collect();
            // Names are checked against the enum, so they are safe to inline.
            sql.push_str(&format!(
                " AND state IN ({})",
                if list.is_empty() {
                    "''".to_owned()
                } else {
                    list.iter()
                        .map(|s| format!("'{s}'"))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            ));
        }
        if let Some(v) = &f.kind {
            push(&mut args, "kind =", v, &mut sql);
        }
        if let Some(v) = &f.site {
            push(&mut args, "agent =", v, &mut sql);
        }
        if let Some(v) = &f.camera {
            push(&mut args, "camera =", v, &mut sql);
        }
        if let Some(v) = &f.from_ms {
            push(&mut args, "first_at_ms >=", v, &mut sql);
        }
        if let Some(v) = &f.to_ms {
            push(&mut args, "first_at_ms <", v, &mut sql);
        }
        if let Some(v) = &f.before_id {
            push(&mut args, "id <", v, &mut sql);
        }
        if !f.silenced.unwrap_or(false) {
            sql.push_str(" AND silenced = 0");
        }
        let limit = f.limit.unwrap_or(50).clamp(1, 500);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        self.db
            .query(&sql, &args)
            .and_then(|rows| rows.iter().map(incident_row).collect())
            .map_err(self.err("cannot list incidents"))
    }

    /// The events grouped in incident `id`, oldest first.
    pub fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        self.db
            .query(
                "SELECT e.seq, e.event_id, e.phase, e.observed_at, e.payload, \
                 EXISTS (SELECT 1 FROM snapshots s WHERE s.agent = e.agent \
                 AND s.event_id = e.event_id), \
                 EXISTS (SELECT 1 FROM clips c WHERE c.agent = e.agent \
                 AND c.event_id = e.event_id) \
                 FROM events e WHERE e.incident_id = ?1 \
                 ORDER BY e.observed_at_ms, e.seq LIMIT 1000",
                &[&id],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let payload: String = r.get(4)?;
                        Ok(IncidentEvent {
                            seq: r.get(0)?,
                            event_id: r.get(1)?,
                            phase: r.get(2)?,
                            observed_at: r.get(3)?,
                            event: serde_json::from_str(&payload)
                                .unwrap_or(serde_json::Value::Null),
                            has_snapshot: r.get(5)?,
                            has_clip: r.get(6)?,
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot read incident events"))
    }

    /// The audit trail of incident `id` (or, with `None`, of everything else), oldest first.
    pub fn audit_trail(&self, id: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
        self.db
            .query(
                "SELECT id, incident_id, at_ms, actor, action, from_state, to_state, note \
                 FROM audit WHERE incident_id IS NOT DISTINCT FROM ?1 ORDER BY id LIMIT 10000",
                &[&id],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            id: r.get(0)?,
                            incident: r.get(1)?,
                            at: ts(r.get(2)?),
                            actor: r.get(3)?,
                            action: r.get(4)?,
                            from_state: r.get(5)?,
                            to_state: r.get(6)?,
                            note: r.get(7)?,
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot read audit trail"))
    }

    /// Applies an operator's `action` on incident `id`, with the audit line, in one
    /// transaction. `arg` is the note (resolve, dismiss, note) or the assignee (assign).
    pub fn act(
        &mut self,
        id: i64,
        action: Action,
        actor: &str,
        arg: Option<&str>,
        now_ms: i64,
    ) -> Result<Change, ActionError> {
        // A closed incident must not take new events: forget which incidents keys joined.
        self.known_keys.clear();
        let arg = arg.map(str::trim).filter(|s| !s.is_empty());
        if arg.is_some_and(|a| a.len() > 4000) {
            return Err(ActionError::Invalid("note is longer than 4000 bytes"));
        }
        if action == Action::Note && arg.is_none() {
            return Err(ActionError::Invalid("a note needs text"));
        }
        let sql = self.err("cannot update incident");
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        let result = (|| -> Result<Result<Change, ActionError>, DbError> {
            let Some(before) = load_for_update(&tx, id)? else {
                return Ok(Err(ActionError::NotFound(id)));
            };
            let to = match action.next_state(before.state) {
                Ok(s) => s,
                Err(t) => return Ok(Err(t.into())),
            };
            if let (Action::Assign, Some(who)) = (action, arg) {
                let known: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
                        &[&who],
                    )?
                    .get(0)?;
                if !known {
                    return Ok(Err(ActionError::Invalid("the assignee is not a user")));
                }
            }
            match action {
                Action::Acknowledge => {
                    tx.execute(
                        "UPDATE incidents SET state = ?2, acked_at_ms = ?3, acked_by = ?4, \
                         assignee = COALESCE(assignee, ?4), overdue = 0, updated_at_ms = ?3 \
                         WHERE id = ?1",
                        &[&id, &to.as_str(), &now_ms, &actor],
                    )?;
                }
                Action::Resolve | Action::Dismiss => {
                    tx.execute(
                        "UPDATE incidents SET state = ?2, closed_at_ms = ?3, closed_by = ?4, \
                         overdue = 0, updated_at_ms = ?3 WHERE id = ?1",
                        &[&id, &to.as_str(), &now_ms, &actor],
                    )?;
                }
                Action::Reopen => {
                    tx.execute(
                        "UPDATE incidents SET state = 'open', closed_at_ms = NULL, \
                         closed_by = NULL, acked_at_ms = NULL, acked_by = NULL, \
                         due_base_ms = ?2, escalations = 0, overdue = 0, updated_at_ms = ?2 \
                         WHERE id = ?1",
                        &[&id, &now_ms],
                    )?;
                }
                Action::Assign => {
                    tx.execute(
                        "UPDATE incidents SET assignee = ?2, updated_at_ms = ?3 WHERE id = ?1",
                        &[&id, &arg, &now_ms],
                    )?;
                }
                Action::Note => {
                    tx.execute(
                        "UPDATE incidents SET updated_at_ms = ?2 WHERE id = ?1",
                        &[&id, &now_ms],
                    )?;
                }
            }
            audit(
                &tx,
                Some(id),
                now_ms,
                actor,
                action.as_str(),
                (Some(before.state.as_str()), Some(to.as_str())),
                arg,
            )?;
            let after = load(&tx, id)?.expect("row updated in this transaction");
            Ok(Ok(Change {
                change: ChangeKind::Changed,
                incident: after,
            }))
        })()
        .map_err(sql)?;
        if result.is_ok() {
            tx.commit()
                .map_err(sqlerr(&p, "cannot commit incident update"))?;
        }
        result
    }

    /// Periodic work at `now_ms`: escalates overdue incidents and opens health incidents for
    /// agents and cameras down longer than their hysteresis. Returns what changed. On
    /// PostgreSQL, collectors sharing the database take turns: one that finds another
    /// running the checks skips this round.
    pub fn tick(&mut self, now_ms: i64) -> Result<Vec<Change>, StoreError> {
        self.known_keys.clear();
        let policy = self.policy;
        let sql = self.err("cannot run incident checks");
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        let changes = (|| -> Result<Vec<Change>, DbError> {
            if tx.dialect() == Dialect::Postgres {
                let mine: bool = tx
                    .query_one("SELECT pg_try_advisory_xact_lock(?1)", &[&PG_TICK_LOCK])?
                    .get(0)?;
                if !mine {
                    return Ok(Vec::new());
                }
            }
            let mut changed: Vec<(i64, ChangeKind)> = Vec::new();
            // Escalation.
            let open: Vec<(i64, String, i64, i64)> = tx
                .query(
                    "SELECT id, severity, due_base_ms, escalations FROM incidents \
                     WHERE state = 'open' AND silenced = 0",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .collect::<Result<_, DbError>>()?;
            for (id, sev, base, done) in open {
                let due = policy.escalations_due(parse_severity(&sev), base, now_ms);
                if due > done {
                    tx.execute(
                        "UPDATE incidents SET overdue = 1, escalations = ?2, updated_at_ms = ?3 \
                         WHERE id = ?1",
                        &[&id, &due, &now_ms],
                    )?;
                    audit(
                        &tx,
                        Some(id),
                        now_ms,
                        SYSTEM,
                        "escalated",
                        (Some("open"), Some("open")),
                        Some(&format!("open past its deadline ({due}x)")),
                    )?;
                    changed.push((id, ChangeKind::Escalated));
                }
            }
            // Agents down.
            let down: Vec<(String, i64)> = tx
                .query(
                    "SELECT a.agent, a.since_ms FROM agents a WHERE a.state = 'offline' \
                     AND a.since_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM incidents i \
                     WHERE i.agent = a.agent AND i.camera = '' AND i.kind = ?2 \
                     AND i.source = 'health' AND i.state IN ('open', 'acknowledged'))",
                    &[&(now_ms - policy.agent_offline_after_ms), &AGENT_OFFLINE],
                )?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<_, DbError>>()?;
            for (agent, since) in down {
                let n = NewIncident {
                    agent: &agent,
                    camera: "",
                    kind: AGENT_OFFLINE,
                    place: "",
                    severity: Severity::Critical,
                    source: Source::Health,
                    observed_ms: since,
                    rule: None,
                };
                let id = open_incident(&tx, &n, now_ms)?;
                changed.push((id, ChangeKind::Opened));
            }
            // Cameras down, on agents that are up (a dead agent is one incident, not many).
            let down: Vec<(String, String, i64)> = tx
                .query(
                    &format!(
                        "SELECT c.agent, c.camera, c.since_ms FROM cameras c \
                         JOIN agents a ON a.agent = c.agent AND a.state = 'online' \
                         WHERE c.state IN ({}) \
                         AND c.since_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM incidents i \
                         WHERE i.agent = c.agent AND i.camera = c.camera \
                         AND i.kind = ?2 AND i.state IN ('open', 'acknowledged'))",
                        sql_names(&camera_states(camera_down))
                    ),
                    &[
                        &(now_ms - policy.camera_offline_after_ms),
                        &camera_offline(),
                    ],
                )?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .collect::<Result<_, DbError>>()?;
            for (agent, camera, since) in down {
                let n = NewIncident {
                    agent: &agent,
                    camera: &camera,
                    kind: camera_offline(),
                    place: "",
                    severity: Severity::Warning,
                    source: Source::Health,
                    observed_ms: since,
                    rule: None,
                };
                let id = open_incident(&tx, &n, now_ms)?;
                changed.push((id, ChangeKind::Opened));
            }
            let mut out = Vec::with_capacity(changed.len());
            for (id, change) in changed {
                if let Some(incident) = load(&tx, id)? {
                    out.push(Change { change, incident });
                }
            }
            Ok(out)
        })()
        .map_err(sql)?;
        tx.commit()
            .map_err(sqlerr(&p, "cannot commit incident checks"))?;
        Ok(changes)
    }

    /// Adds a maintenance silence by `actor` (audited).
    pub fn add_silence(
        &mut self,
        spec: &SilenceSpec,
        actor: &str,
        now_ms: i64,
    ) -> Result<Silence, StoreError> {
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        let id = (|| -> Result<i64, DbError> {
            let id: i64 = tx
                .query_one(
                    "INSERT INTO silences (agent, camera, starts_at_ms, ends_at_ms, reason, \
                     created_by, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3) RETURNING id",
                    &[
                        &spec.site,
                        &spec.camera,
                        &now_ms,
                        &spec.ends_at_ms,
                        &spec.reason,
                        &actor,
                    ],
                )?
                .get(0)?;
            let what = format!(
                "silence {id}: {}/{} until {} ({})",
                spec.site,
                spec.camera.as_deref().unwrap_or("*"),
                ts(spec.ends_at_ms).as_str(),
                spec.reason
            );
            audit(
                &tx,
                None,
                now_ms,
                actor,
                "silence",
                (None, None),
                Some(&what),
            )?;
            Ok(id)
        })()
        .map_err(sqlerr(&p, "cannot add silence"))?;
        tx.commit().map_err(sqlerr(&p, "cannot commit silence"))?;
        Ok(Silence {
            id,
            site: spec.site.clone(),
            camera: spec.camera.clone(),
            starts_at_ms: now_ms,
            ends_at_ms: spec.ends_at_ms,
            reason: spec.reason.clone(),
            created_by: actor.to_owned(),
        })
    }

    /// Ends silence `id` now (audited); false if there is no such silence.
    pub fn end_silence(&mut self, id: i64, actor: &str, now_ms: i64) -> Result<bool, StoreError> {
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        let n = tx
            .execute(
                "UPDATE silences SET ends_at_ms = CASE WHEN ?2 < ends_at_ms THEN ?2 \
                 ELSE ends_at_ms END WHERE id = ?1",
                &[&id, &now_ms],
            )
            .map_err(sqlerr(&p, "cannot end silence"))?;
        if n > 0 {
            audit(
                &tx,
                None,
                now_ms,
                actor,
                "unsilence",
                (None, None),
                Some(&format!("silence {id} ended")),
            )
            .map_err(sqlerr(&p, "cannot audit"))?;
        }
        tx.commit().map_err(sqlerr(&p, "cannot commit silence"))?;
        Ok(n > 0)
    }

    /// Incidents still open or acknowledged, per kind and state (for `/metrics`).
    pub fn live_incident_counts(&self) -> Result<Vec<LiveCount>, StoreError> {
        self.db
            .query(
                "SELECT kind, state, COUNT(*), CAST(SUM(overdue) AS BIGINT) FROM incidents \
                 WHERE state IN ('open', 'acknowledged') GROUP BY kind, state ORDER BY kind, state",
                &[],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(LiveCount {
                            kind: r.get(0)?,
                            state: r.get(1)?,
                            count: r.get(2)?,
                            overdue: r.get::<Option<i64>>(3)?.unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot count incidents"))
    }

    /// Silences still in force at `now_ms`.
    pub fn silences(&self, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
        self.db
            .query(
                "SELECT id, agent, camera, starts_at_ms, ends_at_ms, reason, created_by \
                 FROM silences WHERE ends_at_ms > ?1 ORDER BY id",
                &[&now_ms],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(Silence {
                            id: r.get(0)?,
                            site: r.get(1)?,
                            camera: r.get(2)?,
                            starts_at_ms: r.get(3)?,
                            ends_at_ms: r.get(4)?,
                            reason: r.get(5)?,
                            created_by: r.get(6)?,
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot read silences"))
    }
}
