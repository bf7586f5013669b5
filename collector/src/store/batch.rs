//! One ingest batch, in one transaction: a function per message kind, over what the batch
//! learns as it goes (each agent's highest seq and clock, the incidents it files under).
//! [`super::Store::insert_batch`] opens the transaction, hands each message here and commits.
//! What to decide (event time, plausible seqs, what a camera state means) comes from
//! [`crate::incident`]; this module only turns those decisions into SQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ioc_protocol::{AgentStatus, CameraStatus, Counts, Event};

use super::db::{Db, DbError};
use super::incidents::{self, Filing};
use super::{max_seq, phase_str, seq_i64, wire_name, Committed, StoreError};
use crate::incident::{
    camera_offline, camera_recovered, event_time, seq_plausible, severity_str, AgentClock, Change,
    ChangeKind, Policy, TimeSource, AGENT_OFFLINE,
};

/// The state of one batch while its messages are written.
pub(super) struct Batch<'t> {
    db: &'t Db,
    name: &'t str,
    policy: Policy,
    out: Committed,
    /// Incidents opened or changed, in order.
    changed: Vec<(i64, ChangeKind)>,
    filing: Filing,
    /// Per agent, the highest seq stored or seen in this batch (events and counts).
    high: BTreeMap<String, u64>,
    /// Each agent's max seq before this batch, for gap warnings.
    max_before: BTreeMap<String, u64>,
    seqs_by_agent: BTreeMap<String, Vec<u64>>,
    /// Each agent's clock as known before (or set by) this batch.
    clocks: BTreeMap<String, AgentClock>,
}

impl<'t> Batch<'t> {
    /// A batch on the open transaction `db` (of the database called `name`).
    pub(super) fn new(db: &'t Db, name: &'t str, policy: Policy, filing: Filing) -> Self {
        Batch {
            db,
            name,
            policy,
            out: Committed::default(),
            changed: Vec::new(),
            filing,
            high: BTreeMap::new(),
            max_before: BTreeMap::new(),
            seqs_by_agent: BTreeMap::new(),
            clocks: BTreeMap::new(),
        }
    }

    fn err(&self, what: &'static str) -> impl FnOnce(DbError) -> StoreError + '_ {
        move |source| StoreError::Database {
            database: self.name.to_owned(),
            what,
            source,
        }
    }

    /// An event: stored once (a replay is a duplicate), filed under an incident when new.
    pub(super) fn event(&mut self, e: &Event, json: &str, at: i64) -> Result<(), StoreError> {
        note_max(self.db, &mut self.max_before, &e.agent)
            .map_err(self.err("cannot read max seq"))?;
        let max = self.max_before[&e.agent];
        if let Some(r) = seq_jump(&e.agent, e.seq, max, "events", json) {
            refuse(self.db, r, at, &self.policy, &mut self.out)
                .map_err(self.err("cannot store dead letter"))?;
            return Ok(());
        }
        let clock = agent_clock(self.db, &mut self.clocks, &e.agent)
            .map_err(self.err("cannot read agent clock"))?;
        let (observed_ms, source) = event_time(e.observed_at.unix_millis(), at, clock);
        if source == TimeSource::Received {
            self.out.clock_corrected += 1;
        }
        // A replay is filed nowhere: only a new event joins or opens an incident.
        // A seq above every seq seen so far is new without asking (the usual,
        // in-order case); only one at or below it needs a lookup.
        let stored = if above_high(&mut self.high, &self.max_before, &e.agent, e.seq) {
            false
        } else {
            self.db
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE agent = ?1 AND seq = ?2)",
                    &[&e.agent, &seq_i64(e.seq)],
                )
                .and_then(|r| r.get(0))
                .map_err(self.err("cannot look up event"))?
        };
        let filed = if stored {
            None
        } else {
            Some(
                self.filing
                    .file(self.db, e, observed_ms, at, &self.policy)
                    .map_err(self.err("cannot file event under an incident"))?,
            )
        };
        let n = self
            .db
            .execute(
                "INSERT OR IGNORE INTO events (agent, seq, event_id, phase, kind, \
                 camera, severity, observed_at, observed_at_ms, payload, \
                 received_at_ms, incident_id, snapshot_sha256, time_source) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                &[
                    &e.agent,
                    &seq_i64(e.seq),
                    &e.id,
                    &phase_str(e.phase),
                    &e.kind.as_str(),
                    &e.camera,
                    &severity_str(e.severity),
                    &e.observed_at.as_str(),
                    &observed_ms,
                    &json,
                    &at,
                    &filed.map(|f| f.0),
                    &e.snapshot.as_ref().map(|s| s.sha256.as_str()),
                    &source.as_db(),
                ],
            )
            .map_err(self.err("cannot insert event"))?;
        self.out.count(n);
        self.changed.extend(filed);
        self.out.agent(&e.agent).seqs.push(e.seq);
        push_seq(&mut self.seqs_by_agent, &e.agent, e.seq);
        Ok(())
    }

    /// A counts interval and its items.
    pub(super) fn counts(&mut self, c: &Counts, json: &str, at: i64) -> Result<(), StoreError> {
        note_max(self.db, &mut self.max_before, &c.agent)
            .map_err(self.err("cannot read max seq"))?;
        let max = self.max_before[&c.agent];
        if let Some(r) = seq_jump(&c.agent, c.seq, max, "counts", json) {
            refuse(self.db, r, at, &self.policy, &mut self.out)
                .map_err(self.err("cannot store dead letter"))?;
            return Ok(());
        }
        let clock = agent_clock(self.db, &mut self.clocks, &c.agent)
            .map_err(self.err("cannot read agent clock"))?;
        // An interval is moved whole: it ends when it was received.
        let (end_ms, source) = event_time(c.interval_end.unix_millis(), at, clock);
        let start_ms = end_ms - (c.interval_end.unix_millis() - c.interval_start.unix_millis());
        if source == TimeSource::Received {
            self.out.clock_corrected += 1;
        }
        let n = self
            .db
            .execute(
                "INSERT OR IGNORE INTO counts (agent, seq, camera, line, \
                 interval_start, interval_start_ms, interval_end, interval_end_ms, \
                 payload, received_at_ms, time_source) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                &[
                    &c.agent,
                    &seq_i64(c.seq),
                    &c.camera,
                    &c.line,
                    &c.interval_start.as_str(),
                    &start_ms,
                    &c.interval_end.as_str(),
                    &end_ms,
                    &json,
                    &at,
                    &source.as_db(),
                ],
            )
            .map_err(self.err("cannot insert counts"))?;
        self.out.count(n);
        if n > 0 {
            for item in &c.counts {
                self.db
                    .execute(
                        "INSERT INTO count_items (agent, seq, camera, line, class, \
                     direction, count, interval_start_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        &[
                            &c.agent,
                            &seq_i64(c.seq),
                            &c.camera,
                            &c.line,
                            &item.class,
                            &wire_name(&item.direction),
                            &i64::try_from(item.count).unwrap_or(i64::MAX),
                            &start_ms,
                        ],
                    )
                    .map_err(self.err("cannot insert counts"))?;
            }
        }
        self.out.agent(&c.agent).seqs.push(c.seq);
        push_seq(&mut self.seqs_by_agent, &c.agent, c.seq);
        Ok(())
    }

    /// A snapshot JPEG already written to `file` (hash, path).
    pub(super) fn snapshot(
        &mut self,
        agent: &str,
        event_id: &str,
        jpeg: &[u8],
        file: Option<(String, PathBuf)>,
        at: i64,
    ) -> Result<(), StoreError> {
        let (sha, file) = file.unwrap_or_default();
        // The event, if stored already, says which JPEG it took: another one is
        // refused (and not acked). One that comes first is checked when served.
        let declared: Option<String> = self
            .db
            .query_opt(
                "SELECT snapshot_sha256 FROM events WHERE agent = ?1 \
                 AND event_id = ?2 AND snapshot_sha256 IS NOT NULL LIMIT 1",
                &[&agent, &event_id],
            )
            .and_then(|r| r.map(|r| r.get(0)).transpose())
            .map_err(self.err("cannot look up the event of a snapshot"))?;
        if declared.as_ref().is_some_and(|d| *d != sha) {
            let error = format!(
                "snapshot_mismatch: the JPEG's SHA-256 is {sha}, event {event_id} \
                 declared {}",
                declared.unwrap_or_default()
            );
            let r = Refused {
                agent,
                reason: "snapshot_mismatch",
                topic: format!("agents/{agent}/snapshots/{event_id}"),
                payload: &jpeg[..jpeg.len().min(64)],
                error,
            };
            refuse(self.db, r, at, &self.policy, &mut self.out)
                .map_err(self.err("cannot store dead letter"))?;
            return Ok(());
        }
        let n = self
            .db
            .execute(
                "INSERT OR IGNORE INTO snapshots (event_id, agent, sha256, size, \
                 path, received_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    &event_id,
                    &agent,
                    &sha,
                    &(jpeg.len() as i64),
                    &file.to_string_lossy().as_ref(),
                    &at,
                ],
            )
            .map_err(self.err("cannot insert snapshot"))?;
        self.out.count(n);
        self.out.agent(agent).snapshot_ids.push(event_id.to_owned());
        if n > 0 {
            // The picture of an incident that came before it: the console shows it now.
            let ids = self
                .db
                .query(
                    "SELECT i.id FROM incidents i WHERE i.snapshot_event_id = ?2 AND i.id IN \
                     (SELECT e.incident_id FROM events e WHERE e.agent = ?1 \
                      AND e.event_id = ?2 AND e.snapshot_sha256 IS NOT NULL)",
                    &[&agent, &event_id],
                )
                .and_then(|rows| {
                    rows.iter()
                        .map(|r| r.get::<i64>(0))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.err("cannot find the incident of a snapshot"))?;
            for id in ids {
                if !self.changed.iter().any(|(c, _)| *c == id) {
                    self.changed.push((id, ChangeKind::Evidence));
                }
            }
        }
        Ok(())
    }

    /// Acks a clip part to its agent once the batch commits.
    fn ack_clip_part(&mut self, agent: &str, event_id: &str, part: u32) {
        self.out
            .agent(agent)
            .clip_parts
            .push((event_id.to_owned(), part));
    }

    /// One part of a clip. The part that completes a clip puts it together (parts may have
    /// come through other collectors sharing the database), checks its SHA-256, writes the
    /// file under `{snapshot_dir}/clips/` and re-announces the incidents the event belongs to.
    ///
    /// Bounded per agent: parts of clips not yet whole take at most
    /// `policy.pending_clip_bytes_per_agent`; a part past it is refused and not acked (the
    /// agent's outbox sends it again later), so no agent fills the database with parts of
    /// clips that never complete. A clip is put together only once the parts' sizes add up to
    /// what they declared, reading one part at a time.
    pub(super) fn clip_part(
        &mut self,
        agent: &str,
        event_id: &str,
        h: &ioc_protocol::ClipPart,
        data: &[u8],
        at: i64,
        snapshot_dir: &Path,
    ) -> Result<(), StoreError> {
        let whole: bool = self
            .db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM clips WHERE agent = ?1 AND event_id = ?2)",
                &[&agent, &event_id],
            )
            .and_then(|r| r.get(0))
            .map_err(self.err("cannot look up a clip"))?;
        if whole {
            self.ack_clip_part(agent, event_id, h.part);
            self.out.count(0);
            return Ok(());
        }
        // Room is reserved by what clips declare: the other clips of this agent not yet
        // whole, and this one, must fit the budget together; and no clip's parts may carry
        // more than it declared. So the agent's pending parts never pass the budget.
        let others: i64 = self
            .db
            .query_one(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM (SELECT DISTINCT event_id, \
                 size FROM clip_parts WHERE agent = ?1 AND event_id <> ?2) AS pending",
                &[&agent, &event_id],
            )
            .and_then(|r| r.get(0))
            .map_err(self.err("cannot sum an agent's clip parts"))?;
        let mine: i64 = self
            .db
            .query_one(
                // Its other parts: a replay of this one is not counted twice.
                "SELECT CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) FROM clip_parts \
                 WHERE agent = ?1 AND event_id = ?2 AND part <> ?3",
                &[&agent, &event_id, &h.part],
            )
            .and_then(|r| r.get(0))
            .map_err(self.err("cannot sum a clip's parts"))?;
        let budget = self.policy.pending_clip_bytes_per_agent;
        let refusal = if others as u64 + h.size > budget {
            Some((
                "clip_budget",
                format!(
                    "clip_budget: {agent}'s clips not yet whole declare {others} bytes; \
                     {event_id}'s {} more would pass {budget} (its part {} waits in the \
                     agent's outbox)",
                    h.size, h.part
                ),
            ))
        } else if mine as u64 + data.len() as u64 > h.size {
            Some((
                "clip_mismatch",
                format!(
                    "clip_mismatch: {event_id}'s parts carry more than the {} bytes they declare",
                    h.size
                ),
            ))
        } else {
            None
        };
        if let Some((reason, error)) = refusal {
            if reason == "clip_mismatch" {
                // Sending the same bytes again would not help.
                self.ack_clip_part(agent, event_id, h.part);
            }
            let r = Refused {
                agent,
                reason,
                topic: format!("agents/{agent}/clips/{event_id}"),
                payload: &[],
                error,
            };
            return refuse(self.db, r, at, &self.policy, &mut self.out)
                .map_err(self.err("cannot store dead letter"));
        }
        self.ack_clip_part(agent, event_id, h.part);
        let start_ms = h.start.unix_millis();
        let duration_ms = (h.duration_s * 1000.0).round() as i64;
        let n = self
            .db
            .execute(
                "INSERT OR IGNORE INTO clip_parts (agent, event_id, part, parts, size, sha256, \
                 camera, duration_ms, start_ms, data, received_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                &[
                    &agent,
                    &event_id,
                    &h.part,
                    &h.parts,
                    &(h.size.min(i64::MAX as u64) as i64),
                    &h.sha256,
                    &h.camera,
                    &duration_ms,
                    &start_ms,
                    &data,
                    &at,
                ],
            )
            .map_err(self.err("cannot insert clip part"))?;
        self.out.count(n);
        if n == 0 {
            return Ok(());
        }
        let have: i64 = self
            .db
            .query_one(
                "SELECT COUNT(*) FROM clip_parts WHERE agent = ?1 AND event_id = ?2 \
                 AND sha256 = ?3 AND parts = ?4",
                &[&agent, &event_id, &h.sha256, &h.parts],
            )
            .and_then(|r| r.get(0))
            .map_err(self.err("cannot count clip parts"))?;
        if have < i64::from(h.parts) {
            return Ok(());
        }
        // What the parts make, before any of their bytes are read: a forged header or parts
        // that do not add up cost a query, not the clip's size in memory.
        let (total, first, last, distinct): (i64, i64, i64, i64) = self
            .db
            .query_one(
                "SELECT CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT), MIN(part), MAX(part), \
                 COUNT(DISTINCT part) FROM clip_parts \
                 WHERE agent = ?1 AND event_id = ?2 AND sha256 = ?3",
                &[&agent, &event_id, &h.sha256],
            )
            .and_then(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(self.err("cannot sum clip parts"))?;
        let parts = i64::from(h.parts);
        let adds_up = total as u64 == h.size
            && h.size <= ioc_protocol::clip::MAX_CLIP_BYTES
            && (first, last, distinct) == (0, parts - 1, parts);
        use sha2::{Digest, Sha256};
        let (mut mp4, mut sha) = (Vec::new(), String::new());
        if adds_up {
            // One copy, sized by what arrived (checked above), read a part at a time.
            mp4.reserve_exact(total as usize);
            for part in 0..parts {
                let bytes: Vec<u8> = self
                    .db
                    .query_one(
                        "SELECT data FROM clip_parts WHERE agent = ?1 AND event_id = ?2 \
                         AND sha256 = ?3 AND part = ?4",
                        &[&agent, &event_id, &h.sha256, &part],
                    )
                    .and_then(|r| r.get(0))
                    .map_err(self.err("cannot read clip parts"))?;
                mp4.extend_from_slice(&bytes);
            }
            sha = hex::encode(Sha256::digest(&mp4));
        }
        self.db
            .execute(
                "DELETE FROM clip_parts WHERE agent = ?1 AND event_id = ?2",
                &[&agent, &event_id],
            )
            .map_err(self.err("cannot delete clip parts"))?;
        if !adds_up || sha != h.sha256 {
            let r = Refused {
                agent,
                reason: "clip_mismatch",
                topic: format!("agents/{agent}/clips/{event_id}"),
                payload: &[],
                error: format!(
                    "clip_mismatch: the parts of {event_id}'s clip make {total} bytes (parts \
                     {first}..={last}, {distinct} distinct) with SHA-256 {sha}; the parts \
                     declared {} bytes in {parts} parts, {}",
                    h.size, h.sha256
                ),
            };
            return refuse(self.db, r, at, &self.policy, &mut self.out)
                .map_err(self.err("cannot store dead letter"));
        }
        let path = super::write_content_file(&snapshot_dir.join("clips"), &sha, "mp4", &mp4)?;
        self.db
            .execute(
                "INSERT OR IGNORE INTO clips (agent, event_id, camera, sha256, size, \
                 duration_ms, start_ms, path, received_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    &agent,
                    &event_id,
                    &h.camera,
                    &sha,
                    &(mp4.len() as i64),
                    &duration_ms,
                    &start_ms,
                    &path.to_string_lossy().as_ref(),
                    &at,
                ],
            )
            .map_err(self.err("cannot insert clip"))?;
        // The console shows the clip of an incident that came before it.
        let ids = self
            .db
            .query(
                "SELECT DISTINCT incident_id FROM events WHERE agent = ?1 AND event_id = ?2 \
                 AND incident_id IS NOT NULL",
                &[&agent, &event_id],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| r.get::<i64>(0))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.err("cannot find the incident of a clip"))?;
        for id in ids {
            if !self.changed.iter().any(|(c, _)| *c == id) {
                self.changed.push((id, ChangeKind::Evidence));
            }
        }
        Ok(())
    }

    /// An agent's status; an agent back online resolves its `agent_offline` incident.
    pub(super) fn agent_status(
        &mut self,
        agent: &str,
        status: &AgentStatus,
        retained: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        // The broker's order is the truth: it delivers one topic's messages in order
        // and its retained copy is the latest. The agent's `at` must not order
        // them: its Last Will is dated when the agent started, before every
        // `online` since, and a box that booted in 1970 dates everything then.
        // `since_ms` moves only when the state changes: it dates the outage. A
        // retained copy confirms the agent only as of its own time; a live one is
        // also the measure of the agent's clock.
        let at_ms = status.at.unix_millis();
        let (heard, skew) = if retained {
            (at_ms.min(at), None)
        } else {
            (at, Some(at_ms.saturating_sub(at)))
        };
        let clock = status.clock.map(|c| wire_name(&c));
        let applied = self
            .db
            .execute(
                "INSERT INTO agents (agent, state, version, cameras, at, at_ms, \
                 received_at_ms, since_ms, heard_at_ms, clock_skew_ms, clock, name) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (agent) DO UPDATE SET state = excluded.state, \
                 version = excluded.version, cameras = excluded.cameras, \
                 at = excluded.at, at_ms = excluded.at_ms, \
                 received_at_ms = excluded.received_at_ms, \
                 since_ms = CASE WHEN agents.state = excluded.state \
                            THEN agents.since_ms ELSE excluded.since_ms END, \
                 heard_at_ms = CASE WHEN agents.heard_at_ms IS NULL \
                    OR excluded.heard_at_ms > agents.heard_at_ms \
                    THEN excluded.heard_at_ms ELSE agents.heard_at_ms END, \
                 clock_skew_ms = COALESCE(excluded.clock_skew_ms, agents.clock_skew_ms), \
                 clock = excluded.clock, name = excluded.name",
                &[
                    &agent,
                    &wire_name(&status.state),
                    &status.version,
                    &serde_json::to_string(&status.cameras).unwrap_or_default(),
                    &status.at.as_str(),
                    &at_ms,
                    &at,
                    &heard,
                    &skew,
                    &clock,
                    &status.name,
                ],
            )
            .map_err(self.err("cannot store agent status"))?;
        if applied > 0 {
            self.clocks.remove(agent);
        }
        self.out.statuses += 1;
        if applied > 0 && status.state == ioc_protocol::AgentState::Online {
            for id in incidents::health_recovered(
                self.db,
                agent,
                "",
                AGENT_OFFLINE,
                at,
                "the agent is back online",
            )
            .map_err(self.err("cannot resolve health incident"))?
            {
                self.filing.forget(&[id]);
                self.changed.push((id, ChangeKind::Changed));
            }
        }
        Ok(())
    }

    /// A camera's status; its history on a change; a recovered camera resolves its
    /// `camera_offline` incident.
    pub(super) fn camera_status(
        &mut self,
        agent: &str,
        camera: &str,
        status: &CameraStatus,
        retained: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        // A camera's `at` is when its state began; a retained copy confirms it as
        // of then only.
        let heard = if retained {
            status.at.unix_millis().min(at)
        } else {
            at
        };
        let state = wire_name(&status.state);
        let before: Option<String> = self
            .db
            .query_opt(
                "SELECT state FROM cameras WHERE agent = ?1 AND camera = ?2",
                &[&agent, &camera],
            )
            .and_then(|r| r.map(|r| r.get(0)).transpose())
            .map_err(self.err("cannot read camera status"))?;
        let applied = self
            .db
            .execute(
                "INSERT INTO cameras (agent, camera, state, fps, error, at, at_ms, \
                 received_at_ms, since_ms, detect_fps, target_fps, dropped, \
                 detect_latency_ms, heard_at_ms, name) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                 ON CONFLICT (agent, camera) DO UPDATE SET state = excluded.state, \
                 name = excluded.name, \
                 fps = excluded.fps, error = excluded.error, at = excluded.at, \
                 detect_fps = excluded.detect_fps, target_fps = excluded.target_fps, \
                 dropped = excluded.dropped, \
                 detect_latency_ms = excluded.detect_latency_ms, \
                 at_ms = excluded.at_ms, received_at_ms = excluded.received_at_ms, \
                 since_ms = CASE WHEN cameras.state = excluded.state \
                            THEN cameras.since_ms ELSE excluded.since_ms END, \
                 heard_at_ms = CASE WHEN cameras.heard_at_ms IS NULL \
                    OR excluded.heard_at_ms > cameras.heard_at_ms \
                    THEN excluded.heard_at_ms ELSE cameras.heard_at_ms END",
                &[
                    &agent,
                    &camera,
                    &state,
                    &status.fps.map(f64::from),
                    &status.error,
                    &status.at.as_str(),
                    &status.at.unix_millis(),
                    &at,
                    &status.detect_fps.map(f64::from),
                    &status.target_fps.map(f64::from),
                    &status.dropped.map(|d| d.min(i64::MAX as u64) as i64),
                    &status.detect_latency_ms.map(f64::from),
                    &heard,
                    &status.name,
                ],
            )
            .map_err(self.err("cannot store camera status"))?;
        self.out.statuses += 1;
        if applied > 0 && before.as_deref() != Some(state.as_str()) {
            self.db
                .execute(
                    "INSERT INTO camera_history (agent, camera, state, at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                    &[&agent, &camera, &state, &at],
                )
                .map_err(self.err("cannot store camera history"))?;
            if camera_recovered(status.state) {
                for id in incidents::health_recovered(
                    self.db,
                    agent,
                    camera,
                    camera_offline(),
                    at,
                    "the camera is streaming again",
                )
                .map_err(self.err("cannot resolve health incident"))?
                {
                    self.filing.forget(&[id]);
                    self.changed.push((id, ChangeKind::Changed));
                }
            }
        }
        Ok(())
    }

    /// A message that failed validation, kept for people to look at.
    pub(super) fn dead_letter(
        &mut self,
        topic: &str,
        payload: &[u8],
        error: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        insert_dead_letter(
            self.db,
            topic,
            payload,
            error,
            at,
            &self.policy,
            &mut self.out,
        )
        .map_err(self.err("cannot store dead letter"))?;
        Ok(())
    }

    /// Ends the batch before its commit: caps the dead letters, writes the incidents it
    /// changed and reads them back (once each, in the order they last changed), and notes
    /// new seq gaps. Returns the outcome and the filing keys.
    pub(super) fn finish(mut self) -> Result<(Committed, Filing), StoreError> {
        if self.out.dead_lettered > 0 && self.policy.dead_letters_max > 0 {
            // The newest `dead_letters_max` are kept: a flood cannot fill the disk.
            self.out.dead_letters_removed = self
                .db
                .execute(
                    "DELETE FROM dead_letters WHERE id <= \
                     (SELECT MAX(id) FROM dead_letters) - ?1",
                    &[&self.policy.dead_letters_max],
                )
                .map_err(self.err("cannot cap dead letters"))?;
        }
        let mut filed = self
            .filing
            .flush(self.db)
            .map_err(self.err("cannot update incidents"))?;
        // The incidents as they are after the batch, once each, in the order they last
        // changed; "opened" wins over later updates in the same batch, and new evidence
        // never hides a real change.
        let mut last: BTreeMap<i64, (usize, ChangeKind)> = BTreeMap::new();
        for (pos, (id, change)) in self.changed.iter().enumerate() {
            let e = last.entry(*id).or_insert((pos, *change));
            e.0 = pos;
            if e.1 != ChangeKind::Opened && *change != ChangeKind::Evidence {
                e.1 = *change;
            }
        }
        let mut order: Vec<(i64, (usize, ChangeKind))> = last.into_iter().collect();
        order.sort_unstable_by_key(|(_, (pos, _))| *pos);
        for (id, (_, change)) in order {
            let incident = match filed.remove(&id) {
                Some(i) => Some(i),
                None => incidents::load(self.db, id).map_err(self.err("cannot read incident"))?,
            };
            if let Some(incident) = incident {
                self.out.changes.push(Change { change, incident });
            }
        }
        for (agent, mut seqs) in std::mem::take(&mut self.seqs_by_agent) {
            let mut max = self.max_before.get(&agent).copied().unwrap_or(0);
            seqs.sort_unstable();
            seqs.dedup();
            for s in seqs {
                if s > max + 1 {
                    self.out.new_gaps.push((agent.clone(), max + 1, s - 1));
                }
                max = max.max(s);
            }
        }
        Ok((self.out, self.filing))
    }
}

/// Appends `seq` to `agent`'s list without allocating the key for every message.
fn push_seq(by_agent: &mut BTreeMap<String, Vec<u64>>, agent: &str, seq: u64) {
    match by_agent.get_mut(agent) {
        Some(v) => v.push(seq),
        None => {
            by_agent.insert(agent.to_owned(), vec![seq]);
        }
    }
}

/// Whether `seq` is above every seq of `agent` stored before the batch or seen in it; then
/// it becomes the new high mark. Needs [`note_max`] for `agent` first.
fn above_high(
    high: &mut BTreeMap<String, u64>,
    max_before: &BTreeMap<String, u64>,
    agent: &str,
    seq: u64,
) -> bool {
    let mark = match high.get_mut(agent) {
        Some(m) => m,
        None => high
            .entry(agent.to_owned())
            .or_insert(max_before.get(agent).copied().unwrap_or(0)),
    };
    if seq > *mark {
        *mark = seq;
        true
    } else {
        false
    }
}

/// Records `agent`'s max seq before the batch touches it.
fn note_max(db: &Db, seen: &mut BTreeMap<String, u64>, agent: &str) -> Result<(), DbError> {
    if !seen.contains_key(agent) {
        let m = max_seq(db, agent)?;
        seen.insert(agent.to_owned(), m);
    }
    Ok(())
}

/// Stores a rejected message, its payload cut to the policy's maximum.
fn insert_dead_letter(
    db: &Db,
    topic: &str,
    payload: &[u8],
    error: &str,
    at: i64,
    policy: &Policy,
    out: &mut Committed,
) -> Result<(), DbError> {
    let kept = &payload[..payload.len().min(policy.dead_letter_bytes)];
    if kept.len() < payload.len() {
        out.dead_letters_truncated += 1;
    }
    let kept = kept.to_vec();
    db.execute(
        "INSERT INTO dead_letters (topic, payload, error, received_at_ms, size) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[&topic, &kept, &error, &at, &(payload.len() as i64)],
    )?;
    out.dead_lettered += 1;
    Ok(())
}

/// A message that passed validation but not the store's checks.
struct Refused<'a> {
    agent: &'a str,
    reason: &'static str,
    topic: String,
    payload: &'a [u8],
    error: String,
}

/// Keeps `r` as a dead letter; it is not acked.
fn refuse(
    db: &Db,
    r: Refused<'_>,
    at: i64,
    policy: &Policy,
    out: &mut Committed,
) -> Result<(), DbError> {
    insert_dead_letter(db, &r.topic, r.payload, &r.error, at, policy, out)?;
    out.rejected.push((r.agent.to_owned(), r.reason));
    Ok(())
}

/// The refusal of `agent`'s `seq` (on its `kind` topic) when it jumps implausibly far above
/// `max_before`.
fn seq_jump<'a>(
    agent: &'a str,
    seq: u64,
    max_before: u64,
    kind: &str,
    json: &'a str,
) -> Option<Refused<'a>> {
    (!seq_plausible(seq, max_before)).then(|| Refused {
        agent,
        reason: "seq_jump",
        topic: format!("agents/{agent}/{kind}"),
        payload: json.as_bytes(),
        error: format!(
            "seq_jump: seq {seq} is more than {} above the agent's highest stored seq \
             {max_before}",
            crate::incident::SEQ_JUMP_MAX
        ),
    })
}

/// `agent`'s clock as stored (cached per batch).
fn agent_clock(
    db: &Db,
    cache: &mut BTreeMap<String, AgentClock>,
    agent: &str,
) -> Result<AgentClock, DbError> {
    if let Some(c) = cache.get(agent) {
        return Ok(*c);
    }
    let c = db
        .query_opt(
            "SELECT clock_skew_ms, clock FROM agents WHERE agent = ?1",
            &[&agent],
        )?
        .map(|r| {
            Ok::<_, DbError>(AgentClock {
                skew_ms: r.get(0)?,
                unsynchronised: r.get::<Option<String>>(1)?.is_some_and(|c| c != "ok"),
            })
        })
        .transpose()?
        .unwrap_or_default();
    cache.insert(agent.to_owned(), c);
    Ok(c)
}
